import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { execa } from 'execa';
import { join } from 'node:path';
import { DuetError } from '../../src/errors.js';
import { makeSocketReachable } from '../../src/switch/socket-permissions.js';
import { setupDuet } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';

async function listenOn(t: { after(fn: () => unknown): void }, path: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

test('makeSocketReachable opens the socket and lets others pass through its directories', async (t) => {
  const root = join(await tempDir(t), 'shop');
  const socket = join(root, 'sockets', 'blue.sock');
  await mkdir(join(root, 'sockets'), { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
  await listenOn(t, socket);

  makeSocketReachable(socket, root);
  assert.equal(await mode(socket), 0o666);
  assert.equal(await mode(root), 0o701, 'search only: others cannot list the app dir');
  assert.equal(await mode(join(root, 'sockets')), 0o701);
});

test('makeSocketReachable names a closed directory above the app root', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const closed = join(await tempDir(t), 'private');
  const root = join(closed, 'shop');
  const socket = join(root, 'sockets', 'blue.sock');
  await mkdir(join(root, 'sockets'), { recursive: true });
  await chmod(closed, 0o700);
  await listenOn(t, socket);
  assert.throws(
    () => makeSocketReachable(socket, root),
    (error: unknown) => {
      assert.ok(error instanceof DuetError);
      assert.match(error.message, /private is not searchable by other users/);
      assert.match(error.hint ?? '', /chmod o\+x .*private/);
      return true;
    },
  );
});

for (const switchMode of ['socket', 'port'] as const) {
  test(
    `${switchMode} mode: other local users reach nothing in the app root by path (nginx still reaches the sockets)`,
    { skip: process.getuid?.() !== 0 && 'needs root (to try as nobody)' },
    async (t) => {
      const setup = await setupDuet(t, { switchMode });
      await setup.succeed(['deploy', '--ref', 'v1']);
      assert.match((await setup.get('/')).body, /cafeteria v1/, "nginx's workers (nobody) reach the app");
      const root = setup.app.paths.root;
      // Socket mode lets others pass through the root to the sockets (o+x); port mode has nothing to reach.
      if (switchMode === 'port') assert.equal((await stat(root)).mode & 0o007, 0, 'in port mode the app root is closed entirely');
      for (const entry of await readdir(root)) {
        if (entry === 'sockets') continue;
        assert.equal((await lstat(join(root, entry))).mode & 0o007, 0, `${entry} is closed to others`);
      }
      const asNobody = (argv: string[]) => execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...argv], { reject: false });
      for (const path of [join(setup.app.paths.checkout.blue, 'server.js'), setup.app.paths.journal, setup.app.paths.instanceLog.blue]) {
        const read = await asNobody(['cat', path]);
        assert.notEqual(read.exitCode, 0, `nobody cannot read ${path}`);
        assert.match(read.stderr, /Permission denied/);
      }
      assert.notEqual((await asNobody(['ls', root])).exitCode, 0, 'nor list the app root');
    },
  );
}
