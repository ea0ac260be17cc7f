import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readdir, readFile, stat } from 'node:fs/promises';
import { pickApp } from '../../src/config/load.js';
import { DuetError } from '../../src/errors.js';
import { stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { appConfPath } from '../../src/switch/nginx-conf.js';
import { connectToNginx, switchOf } from '../../src/switch/switch.js';
import { stillAccepting } from '../../src/switch/nginx-workers.js';
import { freePort } from '../support/ports.js';
import { closeServer, collectOutput, get, makeConfig, startBackend, switchFixture, workerPid } from './fixture.js';

test('port mode: connecting blue, then green, moves the public port; disk and HTTP agree', async (t) => {
  const f = await switchFixture(t);
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  assert.equal(await switchOf(f.app).configuredColor(f.config), undefined);
  assert.equal(await switchOf(f.app).servingColor({ timeoutMs: 500 }), undefined);

  await connectToNginx(f.app, f.config, 'blue');
  assert.equal(await switchOf(f.app).configuredColor(f.config), 'blue');
  assert.equal(await switchOf(f.app).servingColor(), 'blue');
  assert.deepEqual(await get(f.app), { status: 200, body: 'blue', color: 'blue' });

  await connectToNginx(f.app, f.config, 'green');
  assert.equal(await switchOf(f.app).configuredColor(f.config), 'green');
  assert.equal(await switchOf(f.app).servingColor(), 'green');
  assert.deepEqual(await get(f.app), { status: 200, body: 'green', color: 'green' });
  assert.match(await readFile(appConfPath(f.app, f.config), 'utf8'), new RegExp(`server 127\\.0\\.0\\.1:${f.app.ports.green} max_fails=0;`));
});

test('port mode: verify returns only once no worker from before the reload accepts; every new connection then gets the new color', async (t) => {
  const f = await switchFixture(t);
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'blue');

  const switched = await switchOf(f.app).switchTo(f.config, 'green');
  assert.ok(switched.reload && switched.reload.workers.length > 0, "the reload's old workers were noted");
  await switchOf(f.app).verify('green', { reload: switched.reload });
  assert.deepEqual(stillAccepting(switched.reload), [], 'verify waited for the old workers');
  for (let i = 0; i < 30; i += 1) assert.equal((await get(f.app)).color, 'green', `request ${i}`);
  assert.deepEqual(await switchOf(f.app).switchTo(f.config, 'green'), {}, 'no reload, nothing to wait for');
});

test('port mode: connecting the connected color again writes and reloads nothing, but verifies', async (t) => {
  const f = await switchFixture(t);
  await startBackend(f, 'blue');
  await connectToNginx(f.app, f.config, 'blue');
  const worker = await workerPid(f.config);
  const before = await stat(appConfPath(f.app, f.config));

  const output = collectOutput();
  await connectToNginx(f.app, f.config, 'blue', { output });
  const after = await stat(appConfPath(f.app, f.config));
  assert.equal(after.ino, before.ino, 'the file was not replaced');
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.equal(await workerPid(f.config), worker, 'nginx was not reloaded');
  assert.doesNotMatch(output.text(), /nginx: wrote/);
  assert.match(output.text(), /verify: 127\.0\.0\.1:\d+ serves shop from blue/);

  // The verification is a real question to the public port: with nginx gone it fails.
  await stopManagedNginx(f.config);
  await assert.rejects(switchOf(f.app).verify('blue', { timeoutMs: 200 }), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'verify');
    assert.match(error.message, /did not give X-Duet-Color: blue/);
    return true;
  });
});

test('port mode: a config nginx rejects is rolled back and blue keeps serving', async (t) => {
  const f = await switchFixture(t);
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'blue');
  const path = appConfPath(f.app, f.config);
  const good = await readFile(path, 'utf8');
  const worker = await workerPid(f.config);

  // An address the schema lets through but no machine has: only nginx can catch it (the managed
  // master, told to reload, refuses the configuration and logs why).
  const typo = makeConfig(f.stateDir, { listen: `999.1.1.1:${f.listenPort}`, ports: f.app.ports });
  await assert.rejects(connectToNginx(pickApp(typo, 'shop'), typo, 'green'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'switch');
    assert.match(error.message, /host not found in "999\.1\.1\.1:\d+" of the "listen" directive/);
    assert.match(error.hint ?? '', /restored and nginx still serves blue/);
    return true;
  });
  assert.equal(await readFile(path, 'utf8'), good);
  assert.deepEqual(await readdir(f.config.nginx.confDir), ['duet-shop.conf'], 'no temp file left behind');
  assert.equal(await switchOf(f.app).configuredColor(f.config), 'blue');
  assert.deepEqual(await get(f.app), { status: 200, body: 'blue', color: 'blue' });
  assert.equal(await workerPid(f.config), worker, 'nginx was not reloaded');
});

test('port mode: a rejected first config leaves no file behind', async (t) => {
  const f = await switchFixture(t, { listen: '999.1.1.1:8080' });
  await startBackend(f, 'blue');
  await assert.rejects(connectToNginx(f.app, f.config, 'blue'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.match(error.hint ?? '', /shop was not connected before/);
    return true;
  });
  assert.deepEqual(await readdir(f.config.nginx.confDir), []);
  assert.equal(await switchOf(f.app).configuredColor(f.config), undefined);
});

test('port mode: a public port held by another process is refused by nginx, and no file is left', async (t) => {
  const f = await switchFixture(t);
  await startBackend(f, 'blue');
  // A config nginx can parse but not run: only the master finds out, when it tries to bind.
  const squatter = createServer((_req, res) => res.end('not nginx\n'));
  const port = await freePort();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
  f.cleanup(() => closeServer(squatter));
  const taken = makeConfig(f.stateDir, { listen: `127.0.0.1:${port}`, ports: f.app.ports });
  await assert.rejects(connectToNginx(pickApp(taken, 'shop'), taken, 'blue'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'switch');
    assert.match(error.message, /bind\(\) to 127\.0\.0\.1:\d+ failed \(98: Address already in use\)[^]*still could not bind\(\)/);
    assert.match(error.hint ?? '', /shop was not connected before/);
    return true;
  });
  assert.deepEqual(await readdir(f.config.nginx.confDir), []);
});

test('port mode: switching to the configured color again brings it back after nginx was stopped (bootup)', async (t) => {
  const f = await switchFixture(t);
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'green');
  await stopManagedNginx(f.config);
  await assert.rejects(get(f.app), /ECONNREFUSED/);

  assert.equal(await switchOf(f.app).configuredColor(f.config), 'green', 'the file still names green');
  await switchOf(f.app).switchTo(f.config, 'green');
  await switchOf(f.app).verify('green');
  assert.deepEqual(await get(f.app), { status: 200, body: 'green', color: 'green' });
});
