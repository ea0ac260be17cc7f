import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { appendFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../src/config/load.js';
import { CommandFailedError, DuetError } from '../../src/errors.js';
import { ensureManagedNginx, stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { masterRefusal, reloadNginx } from '../../src/switch/nginx-reload.js';
import { managedNginxPid } from '../../src/switch/nginx-workers.js';
import { childrenOf } from '../../src/util/proc.js';
import { switchFixture, workerPid } from './fixture.js';
import { freePort } from '../support/ports.js';

/** The same config, with a reload_cmd that can only fail: a reload that succeeds did not run it. */
const withFailingReloadCmd = (config: Config): Config => ({
  ...config,
  nginx: { ...config.nginx, reloadCmd: ['sh', '-c', 'echo reload_cmd ran >&2; exit 3'] },
});

test('the managed nginx is reloaded by a signal, and reloadNginx returns once the new workers run', async (t) => {
  const f = await switchFixture(t);
  await ensureManagedNginx(f.config);
  const master = managedNginxPid(f.config)!;
  const worker = await workerPid(f.config);

  await reloadNginx(withFailingReloadCmd(f.config));
  const now = childrenOf(master);
  assert.ok(
    now.some((pid) => pid !== worker),
    `a new worker runs as soon as it returns (children: ${now.join(', ')})`,
  );
  assert.equal(managedNginxPid(f.config), master, 'the same master, reloaded in place');
});

test('a configuration the managed master refuses is reported in its own words, and nothing changes', async (t) => {
  const f = await switchFixture(t);
  await ensureManagedNginx(f.config);
  const worker = await workerPid(f.config);
  await writeFile(join(f.config.nginx.confDir, 'typo.conf'), 'bogus_directive on;\n');

  await assert.rejects(reloadNginx(withFailingReloadCmd(f.config)), (error: unknown) => {
    assert.ok(error instanceof DuetError && !(error instanceof CommandFailedError), String(error));
    assert.equal(error.step, 'nginx reload');
    assert.match(error.message, /\[emerg\] \d+#\d+: unknown directive "bogus_directive" in \S+typo\.conf:1/);
    assert.match(error.hint ?? '', /keeps running its previous configuration/);
    return true;
  });
  assert.equal(await workerPid(f.config), worker, 'the old worker still serves');
});

test('a port nginx cannot bind is a refusal too, once nginx stops retrying it, found behind a flood of other log lines', async (t) => {
  const f = await switchFixture(t);
  await ensureManagedNginx(f.config);
  const port = await freePort();
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => holder.close(resolve)));
  await writeFile(join(f.config.nginx.confDir, 'taken.conf'), `server { listen 127.0.0.1:${port}; }\n`);

  const reloading = reloadNginx(f.config);
  // While nginx retries (2.5 s), 200 kB of worker-like errors land between its first failed
  // bind() and its final word.
  const line = `2026/11/26 03:44:33 [error] 1#1: *1 connect() failed (111: Connection refused) while connecting to upstream${' '.repeat(100)}\n`;
  appendFileSync(f.config.nginx.managed!.errorLog, line.repeat(Math.ceil(200_000 / line.length)));
  await assert.rejects(reloading, (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.match(error.message, /bind\(\) to 127\.0\.0\.1:\d+ failed \(98: Address already in use\)/);
    assert.match(error.message, /still could not bind\(\)/);
    return true;
  });
});

test('without a running managed master, reload_cmd is what runs', async (t) => {
  const f = await switchFixture(t);
  await ensureManagedNginx(f.config);
  await stopManagedNginx(f.config);
  await assert.rejects(reloadNginx(withFailingReloadCmd(f.config)), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError);
    assert.match(error.outputTail, /reload_cmd ran/);
    return true;
  });
});

test('masterRefusal: only the master, and a failed bind only once nginx gives up', () => {
  const bind = '2026/11/26 03:44:33 [emerg] 42#42: bind() to 127.0.0.1:8080 failed (98: Address already in use)';
  assert.equal(masterRefusal(`${bind}\n${bind}\n`, 42), undefined, 'nginx is still retrying');
  assert.equal(
    masterRefusal(`${bind}\n2026/11/26 03:44:33 [emerg] 42#42: still could not bind()\n`, 42),
    `${bind}\n2026/11/26 03:44:33 [emerg] 42#42: still could not bind()`,
  );
  assert.equal(masterRefusal('2026/11/26 03:44:33 [emerg] 7#7: unknown directive "x" in /a.conf:1\n', 42), undefined, 'another process');
  assert.equal(masterRefusal('2026/11/26 03:44:33 [crit] 43#43: connect() to unix:/x failed\n', 42), undefined, 'a worker at run time');
  assert.match(masterRefusal('2026/11/26 03:44:33 [emerg] 42#42: unknown directive "x" in /a.conf:1\n', 42) ?? '', /unknown directive/);
});
