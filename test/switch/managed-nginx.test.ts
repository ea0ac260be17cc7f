import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../../src/config/load.js';
import { ensureManagedNginx, stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { managedNginxPid } from '../../src/switch/nginx-workers.js';
import { hasExited, procStat } from '../../src/util/proc.js';
import { switchFixture, workerPid } from './fixture.js';

/** Alive and not a zombie. */
function isAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && !hasExited(stat);
}

/** pids whose command line names `text` (pgrep -f); pgrep itself exits 1 when there are none. */
async function pgrep(text: string): Promise<number[]> {
  try {
    const { stdout } = await promisify(execFile)('pgrep', ['-f', text]);
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch (error) {
    if ((error as { code?: number }).code === 1) return [];
    throw error;
  }
}

test('without nginx.managed everything is a no-op', async () => {
  const config = parseConfig('state_dir: /nonexistent/duet\napps:\n  shop: { clone_url: /srv/shop.git }\n', 'test.yml');
  await ensureManagedNginx(config);
  assert.equal(managedNginxPid(config), undefined);
  await stopManagedNginx(config);
});

test('ensureManagedNginx starts nginx once, and stopManagedNginx leaves no process behind', async (t) => {
  const { config } = await switchFixture(t);
  const paths = config.nginx.managed!;
  await ensureManagedNginx(config);
  const master = managedNginxPid(config);
  assert.ok(master !== undefined && isAlive(master));
  const worker = await workerPid(config);
  const main = await readFile(paths.mainConf, 'utf8');
  assert.match(main, new RegExp(`^pid ${paths.pidFile};$`, 'm'));
  assert.match(main, new RegExp(`include ${paths.confDir}/\\*\\.conf;`));
  assert.ok((await stat(join(paths.prefix, 'client_body_temp'))).isDirectory());
  // No `user` directive: started by root, the workers drop to nobody, like a packaged nginx's.
  await t.test('started by root, the workers are not root', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
    const status = await readFile(`/proc/${worker}/status`, 'utf8');
    assert.doesNotMatch(status, /^Uid:\s+0\b/m, 'the worker does not run as root');
  });

  const written = (await stat(paths.mainConf)).mtimeMs;
  await ensureManagedNginx(config);
  assert.equal(managedNginxPid(config), master, 'the running nginx was kept');
  assert.equal(await workerPid(config), worker, 'and not reloaded');
  assert.equal((await stat(paths.mainConf)).mtimeMs, written, 'an unchanged main config is not rewritten');
  assert.deepEqual(await pgrep(paths.prefix), [master]);

  await stopManagedNginx(config);
  assert.equal(isAlive(master), false);
  assert.equal(isAlive(worker), false);
  assert.deepEqual(await pgrep(paths.prefix), []);
  assert.equal(managedNginxPid(config), undefined);
  await stopManagedNginx(config); // already stopped: a no-op
});

test('a stale or empty pid file does not pass for a running nginx', async (t) => {
  const { config } = await switchFixture(t);
  const paths = config.nginx.managed!;
  await ensureManagedNginx(config);
  await stopManagedNginx(config);

  // After a reboot the old pid may belong to anything, here: this test process.
  await writeFile(paths.pidFile, `${process.pid}\n`);
  assert.equal(managedNginxPid(config), undefined);
  await ensureManagedNginx(config);
  const master = managedNginxPid(config);
  assert.ok(master !== undefined && master !== process.pid);
  await stopManagedNginx(config);

  // `nginx -t` leaves an empty pid file when nginx is not running.
  await writeFile(paths.pidFile, '');
  await ensureManagedNginx(config);
  assert.ok(managedNginxPid(config) !== undefined);
});

test('a changed main config is rewritten and reloaded into the running nginx', async (t) => {
  const { config } = await switchFixture(t);
  const paths = config.nginx.managed!;
  await ensureManagedNginx(config);
  const master = managedNginxPid(config);
  const worker = await workerPid(config);
  const written = await readFile(paths.mainConf, 'utf8');
  await appendFile(paths.mainConf, '# edited by hand\n');
  await ensureManagedNginx(config);
  assert.equal(await readFile(paths.mainConf, 'utf8'), written);
  assert.equal(managedNginxPid(config), master);
  assert.notEqual(await workerPid(config), worker, 'nginx was reloaded');
});
