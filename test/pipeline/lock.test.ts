import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type CliResult, type DuetSetup, type RunningCli } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';
import { journalRuns } from '../support/journal.js';

/**
 * v1 live on blue, then a deploy of v2 that holds the lock until the test lets it go: green's
 * health check gets no answer while the CONTROL_DIR file is there. However slowly the CLI
 * processes the test starts meanwhile come up, the deploy is still holding the lock.
 */
async function deployHoldingTheLock(t: TestContext): Promise<{ setup: DuetSetup; deploying: RunningCli; release(): Promise<void> }> {
  const control = await tempDir(t, 'duet-control');
  const setup = await setupDuet(t, { app: { env: `{ CONTROL_DIR: "${control}" }`, health: '{ path: /health, timeout_s: 60, watch_s: 0.3 }' } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const hold = join(control, 'health-delay-ms.green');
  await writeFile(hold, '600000');
  const deploying = setup.start(['deploy', '--ref', 'v2']);
  const locked = await pollUntil(async () => (existsSync(setup.app.paths.lock) ? true : undefined), { timeoutMs: 30_000 });
  assert.ok(locked, `the deploy takes the lock: ${deploying.output()}`);
  return { setup, deploying, release: () => rm(hold) };
}

/** Until `cli` says it waits for the lock. */
async function waitsForTheLock(cli: RunningCli, pattern: RegExp): Promise<void> {
  const waiting = await pollUntil(async () => (pattern.test(cli.output()) ? true : undefined), { timeoutMs: 30_000 });
  assert.ok(waiting, `no ${pattern} within 30 s: ${cli.output()}`);
}

test('a second deploy waits for the lock; --no-wait fails at once naming the holder', async (t) => {
  const { setup, deploying, release } = await deployHoldingTheLock(t);
  const asked = setup.start(['deploy', '--ref', 'v2', '--no-wait']);
  let answered: CliResult | undefined;
  void asked.done.then((result) => (answered = result));
  // Bounded: a --no-wait that waits would otherwise wait for the held deploy until the test's deadline.
  const impatient = await pollUntil(async () => answered, { timeoutMs: 30_000 });
  if (!impatient) await release(); // the deploy, and the CLI that waits for it, end before the test fails
  assert.ok(impatient, `--no-wait still waits after 30 s: ${asked.output()}`);
  assert.equal(impatient.code, 1);
  assert.match(impatient.stderr, /cafeteria is locked by pid \d+ \(deploy v2, since /);

  const second = setup.start(['deploy', '--ref', 'v2']);
  await waitsForTheLock(second, /waiting for the lock held by pid \d+ \(deploy v2/);
  await release();
  assert.equal((await deploying.done).code, 0);
  const waited = await second.done;
  assert.equal(waited.code, 0, waited.stderr);
  assert.match(waited.stdout, /already live on green/, 'the waiter saw the first deploy finished');
});

test('a lock left by a dead process is taken over', async (t) => {
  const { duet, app, get } = await setupDuet(t, { tags: { v1: {} } });
  // A real pid that no longer runs, with the start time it had.
  const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
  await mkdir(dirname(app.paths.lock), { recursive: true });
  await writeFile(app.paths.lock, JSON.stringify({ pid: Number(dead), startTime: '1', command: 'deploy v0', since: '2026-01-01T00:00:00Z' }));
  const result = await duet(['deploy', '--ref', 'v1', '--no-wait']);
  assert.equal(result.code, 0, result.stderr);
  assert.match((await get('/')).body, /cafeteria v1/);
  assert.equal(existsSync(app.paths.lock), false);
});

test('start-instance, stop-instance and connect-to-nginx take the lock too: never under a running deploy', async (t) => {
  const { setup, deploying, release } = await deployHoldingTheLock(t);
  const { duet } = setup;
  // Green is the deploy's idle color, starting: stopping it now would fail the deploy at health.
  const stop = await duet(['stop-instance', 'green', '--no-wait']);
  assert.equal(stop.code, 1);
  assert.match(stop.stderr, /cafeteria is locked by pid \d+ \(deploy v2, since /);
  const start = await duet(['start-instance', 'blue', '--no-wait']);
  assert.equal(start.code, 1);
  assert.match(start.stderr, /locked by pid \d+ \(deploy v2/);

  const connect = await duet(['connect-to-nginx', 'blue', '--no-wait']);
  assert.equal(connect.code, 1);
  assert.match(connect.stderr, /locked by pid \d+ \(deploy v2/);

  const stopBlue = setup.start(['stop-instance', 'blue']);
  await waitsForTheLock(stopBlue, /waiting for pid \d+ \(deploy v2/);
  await release();
  assert.equal((await deploying.done).code, 0, 'the deploy was not disturbed');
  const waited = await stopBlue.done;
  assert.equal(waited.code, 0, waited.stderr);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal(waited.stdout.trim(), 'stopped', 'then blue (now the standby) was stopped');
});

test('the acts are journaled like a deploy: their own kind, the steps they share with it, failed ones with their step', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {}, v2: { VERSION: 'v2\n' } } });
  const { duet, succeed, app } = setup;
  await succeed(['deploy', '--ref', 'v1']);
  await succeed(['update-instance', 'green', '--ref', 'v2']);
  await succeed(['start-instance', 'green']);
  await succeed(['connect-to-nginx', 'green']);
  await succeed(['stop-instance', 'blue']);
  await succeed(['stop-instance', 'blue']);
  const refused = await duet(['stop-instance', 'green']);
  assert.equal(refused.code, 1, 'the live color is not stopped without --force');
  await succeed(['bootup']);

  const records = (await journalRuns(app.paths.journal)).slice(1);
  const shape = records.map((r) => [r.kind, r.outcome, r.steps.map((s) => `${s.name}:${s.status}`).join(' ')]);
  assert.deepEqual(shape, [
    ['update-instance', 'success', 'resolve:done update:done'],
    ['start-instance', 'success', 'start:done health:done'],
    ['connect-to-nginx', 'success', 'health:done switch:done verify:done'],
    ['stop-instance', 'success', 'retire:done'],
    ['stop-instance', 'noop', 'retire:skipped'],
    ['stop-instance', 'failed', ''],
    // green runs (skipped), the proxy is applied again, the stopped standby blue comes back.
    ['bootup', 'success', 'start:skipped switch:done verify:done start:done'],
  ]);
  const [update, , connect] = records;
  assert.equal(update!.ref, 'v2');
  assert.equal(update!.color, 'green');
  assert.match(update!.resolvedSha ?? '', /^[0-9a-f]{40}$/);
  assert.deepEqual([connect!.from, connect!.color], ['blue', 'green']);
  assert.equal(records[5]!.failedStep, 'retire');
  assert.match(records[5]!.error ?? '', /green is the color nginx serves/);
  const history = await succeed(['history']);
  assert.match(history.stdout, /update-instance/);
});
