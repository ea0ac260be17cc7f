import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { AppConfig } from '../../src/config/load.js';
import { SocketOpener } from '../../src/switch/socket-opener.js';
import { pollUntil } from '../../src/util/poll.js';
import { tempDir } from '../support/tmp.js';

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

function appAt(root: string): AppConfig {
  const socket = { blue: join(root, 'sockets', 'blue.sock'), green: join(root, 'sockets', 'green.sock') };
  return { name: 'shop', paths: { root, socket } } as unknown as AppConfig;
}

async function listen(path: string): Promise<Server> {
  const server = createServer();
  // The umask of an app that does nothing about it: a socket nginx's workers cannot connect to.
  const umask = process.umask(0o077);
  try {
    await new Promise<void>((resolve) => server.listen(path, resolve));
  } finally {
    process.umask(umask);
  }
  return server;
}

test('SocketOpener opens a socket the app makes anew, without waiting for a probe, and only its colors', async (t) => {
  const root = join(await tempDir(t), 'shop');
  await mkdir(join(root, 'sockets'), { recursive: true });
  const errors: string[] = [];
  const opener = new SocketOpener(appAt(root), (socket, error) => errors.push(`${socket}: ${error.message}`)).start();
  t.after(() => opener.close());

  for (const name of ['blue.sock', 'other.sock', 'green.sock']) {
    const server = await listen(join(root, 'sockets', name));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  }
  const opened = await pollUntil(async () => ((await mode(join(root, 'sockets', 'green.sock'))) === 0o666 ? true : undefined), {
    timeoutMs: 2000,
    maxIntervalMs: 5,
  });
  assert.equal(opened, true, 'green.sock became 0666');
  assert.equal(await mode(join(root, 'sockets', 'blue.sock')), 0o666);
  assert.equal(await mode(join(root, 'sockets', 'other.sock')), 0o700, 'a socket that is no color of the app is left alone');
  assert.equal((await mode(join(root, 'sockets'))) & 0o001, 0o001, 'others may pass through the directory');
  assert.deepEqual(errors, []);
});

test('SocketOpener waits for a sockets directory that does not exist yet', async (t) => {
  const root = join(await tempDir(t), 'shop');
  const opener = new SocketOpener(appAt(root), () => {}).start();
  t.after(() => opener.close());
  await mkdir(join(root, 'sockets'), { recursive: true });
  opener.start(); // the owner's next look
  const server = await listen(join(root, 'sockets', 'blue.sock'));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const opened = await pollUntil(async () => ((await mode(join(root, 'sockets', 'blue.sock'))) === 0o666 ? true : undefined), {
    timeoutMs: 2000,
    maxIntervalMs: 5,
  });
  assert.equal(opened, true);
});
