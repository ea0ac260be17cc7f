import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { mountTmpfsOver } from '../support/tmpfs.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';
import { API_TOKEN, getJson, startServe, type ServeProcess } from '../support/serve.js';

async function submit(serve: ServeProcess, ref: string): Promise<string> {
  const response = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref }),
  });
  assert.equal(response.status, 202);
  return ((await response.json()) as { deploy: string }).deploy;
}

async function finished(serve: ServeProcess, id: string, timeoutMs = 30_000): Promise<any> {
  const record = await pollUntil(
    async () => {
      const { body } = await getJson(`${serve.url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? body : undefined;
    },
    { timeoutMs, maxIntervalMs: 200 },
  );
  assert.ok(record, `deploy ${id} did not finish in ${timeoutMs} ms (waiting on a lock nobody holds?)\n${serve.output()}`);
  return record;
}

async function exitsWithin(serve: ServeProcess, ms: number): Promise<boolean> {
  return (await Promise.race([serve.child.then(() => true), new Promise<false>((resolve) => setTimeout(resolve, ms, false).unref())])) === true;
}

test('a lock duet serve could not remove (read-only state dir) wedges nothing: recognised, removed once writable, SIGTERM exits', async (t) => {
  const port = await freePort();
  // v3 goes to blue, whose health check gets no answer while the CONTROL_DIR file is there: serve's
  // deploy holds the lock until the test has made run/ read-only.
  const control = await tempDir(t, 'duet-control');
  const hold = join(control, 'health-delay-ms.blue');
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n' }, v3: { VERSION: 'v3\n' } },
    app: { env: `{ CONTROL_DIR: "${control}" }`, health: '{ path: /health, timeout_s: 60, watch_s: 0.3 }' },
    top: { server: `{ listen: "127.0.0.1:${port}" }` },
  });
  const { app } = setup;
  // Both colors installed first: from then on no deploy stages node_modules in run/, which a
  // rename from a separate mount could not move into a checkout (EXDEV).
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  // Only run/ (the lock, the pidfiles) goes read-only: the rest of the state dir has files open
  // for writing (logs, the queue), and the kernel refuses to remount those read-only.
  const run = await mountTmpfsOver(setup, dirname(app.paths.lock));
  const serve = await startServe(t, setup.configPath, port);

  await writeFile(hold, '600000');
  const v2 = await submit(serve, 'v3');
  const inHealth = await pollUntil(
    async () => ((await getJson(`${serve.url}/deploys/${v2}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined),
    { timeoutMs: 30_000 },
  );
  assert.ok(
    inHealth && existsSync(app.paths.lock),
    `serve holds the lock while v2 starts\n${JSON.stringify((await getJson(`${serve.url}/deploys/${v2}`)).body)}\n${serve.output()}`,
  );
  await run.readOnly();
  await rm(hold);
  await finished(serve, v2);
  assert.ok(existsSync(app.paths.lock), 'the release failed: the lock file is still there');

  // Still read-only: serve knows the lock is its own leftover and says why it cannot deploy,
  // instead of waiting on itself forever.
  const blocked = await finished(serve, await submit(serve, 'v1'), 15_000);
  assert.equal(blocked.state, 'failed');
  assert.match(blocked.summary, /^lock failed: cannot write the lock of cafeteria .*EROFS/);

  await run.writable();
  const freed = await pollUntil(async () => (existsSync(app.paths.lock) ? undefined : true), { timeoutMs: 15_000 });
  assert.ok(freed, 'once writable again, serve removes the lock it failed to release');
  const again = await finished(serve, await submit(serve, 'v3'));
  assert.equal(again.state, 'succeeded', JSON.stringify(again));
  const cli = await setup.duet(['deploy', '--ref', 'v1', '--no-wait']);
  assert.equal(cli.code, 0, `a shell deploy is not refused by a lock nobody holds: ${cli.stderr}`);
  assert.match((await setup.get('/')).body, /cafeteria v1/);

  serve.child.kill('SIGTERM');
  assert.ok(await exitsWithin(serve, 10_000), `SIGTERM stops duet serve\n${serve.output()}`);
});

test('a deploy that starts while the state dir is read-only fails at once, naming EROFS and what to check; the live color serves on', async (t) => {
  const setup = await setupDuet(t);
  await setup.succeed(['deploy', '--ref', 'v1']);
  // run/ holds the lock; no lock file is there, so nothing but the read-only disk is in the way.
  const run = await mountTmpfsOver(setup, dirname(setup.app.paths.lock));
  await run.readOnly();
  const started = Date.now();
  const deploy = setup.start(['deploy', '--ref', 'v2']);
  const result = await Promise.race([deploy.done, new Promise<undefined>((resolve) => setTimeout(resolve, 20_000, undefined).unref())]);
  if (!result) deploy.kill();
  assert.ok(result, `the deploy still waits after 20 s on a read-only state dir:\n${deploy.output()}`);
  process.stderr.write(`lock-readonly: the deploy failed after ${Date.now() - started} ms\n`);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /cannot write the lock of cafeteria .*EROFS/);
  assert.match(result.stderr, /check `df` and `mount`/);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
});

test('SIGTERM stops a duet serve whose deploy waits for a lock a shell deploy holds; the deploy runs at the next start', async (t) => {
  const port = await freePort();
  // The shell deploy holds the lock until the test lets it go: green's health check gets no
  // answer while the CONTROL_DIR file is there.
  const control = await tempDir(t, 'duet-control');
  const hold = join(control, 'health-delay-ms.green');
  const setup = await setupDuet(t, {
    app: { env: `{ CONTROL_DIR: "${control}" }`, health: '{ path: /health, timeout_s: 60, watch_s: 0.3 }' },
    top: { server: `{ listen: "127.0.0.1:${port}" }` },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await writeFile(hold, '600000');
  const shell = setup.start(['deploy', '--ref', 'v2']);
  assert.ok(await pollUntil(async () => (existsSync(setup.app.paths.lock) ? true : undefined), { timeoutMs: 30_000 }), 'the shell deploy holds the lock');
  const serve = await startServe(t, setup.configPath, port);
  const id = await submit(serve, 'v1');
  assert.ok(
    await pollUntil(async () => (serve.output().includes('waiting for the lock held by pid') ? true : undefined), { timeoutMs: 30_000 }),
    serve.output(),
  );

  serve.child.kill('SIGTERM');
  assert.ok(await exitsWithin(serve, 30_000), `SIGTERM stops duet serve, not waiting for the shell deploy\n${serve.output()}`);
  assert.ok(existsSync(setup.app.paths.lock), `the shell deploy still holds the lock: ${shell.output()}`);
  await rm(hold);
  const shellResult = await shell.done;
  assert.equal(shellResult.code, 0, shellResult.stderr);
  assert.match((await setup.get('/')).body, /cafeteria v2/);

  const next = await startServe(t, setup.configPath, port);
  const resumed = await finished(next, id);
  assert.equal(resumed.state, 'succeeded', JSON.stringify(resumed));
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  await next.stop();
});
