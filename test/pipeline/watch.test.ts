import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import { pollUntil } from '../../src/util/poll.js';
import { cliPath, setupDuet, type DuetSetup, type SetupOptions } from '../support/duet.js';
import { assertOnlyInFlightFailed, startLoad, type LoadReport } from '../support/load.js';
import { tempDir } from '../support/tmp.js';

/** v1 live on blue, then v2 (which misbehaves after going live) deployed under load: the deploy fails at watch. */
async function deployBadV2(setup: DuetSetup, keepAlive: boolean): Promise<{ stderr: string; load: LoadReport }> {
  await setup.succeed(['deploy', '--ref', 'v1']);
  const load = startLoad(setup.listenPort, { concurrency: 4, keepAlive });
  let failed;
  try {
    failed = await setup.duet(['deploy', '--ref', 'v2']);
  } finally {
    await load.stop();
  }
  assert.equal(failed.code, 1, `the deploy fails: ${failed.stdout}${failed.stderr}`);
  return { stderr: failed.stderr, load: load.report };
}

async function assertBackOnBlue(setup: DuetSetup): Promise<void> {
  assert.equal((await setup.duet(['enabled-instance'])).stdout, 'blue\n');
  assert.equal((await setup.duet(['pid', 'green'])).code, 1, 'the failed color was stopped');
  const page = await setup.get('/');
  assert.match(page.body, /cafeteria v1/);
  const [last] = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.equal(last.outcome, 'failed');
  assert.equal(last.failedStep, 'watch');
}

/**
 * The verdict names the exit and the time since going live, by the watch's own clock: within the
 * watch (`watchS`), and no more than the watch step took (it starts as green is marked live). A
 * loaded machine moves the number (a late first request, a late timer), not these bounds.
 */
async function assertCrashVerdict(setup: DuetSetup, stderr: string, exitCode: number, watchS: number): Promise<void> {
  const verdict = new RegExp(
    `watch: green exited with code ${exitCode} (\\d+\\.\\d) s after going live; switched back to blue \\([0-9a-f]{7}\\) and stopped green`,
  ).exec(stderr);
  assert.ok(verdict, stderr);
  const seconds = Number(verdict[1]);
  const [last] = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  const watchMs: number = last.steps.find((step: { name: string }) => step.name === 'watch').ms;
  // The message rounds to a tenth.
  assert.ok(seconds < watchS && seconds * 1000 <= watchMs + 50, `${seconds} s after going live: not within the ${watchS} s watch, or over its ${watchMs} ms`);
}

/** The crash of v2 fails the requests it had (load concurrency 4), and nothing else. */
function assertOnlyTheCrashFailed(report: LoadReport): void {
  assertOnlyInFlightFailed(report, 4);
  assert.ok((report.versions.v2 ?? 0) > 0, `v2 did go live: ${JSON.stringify(report.versions)}`);
}

const modes = [
  { switchMode: 'port', keepAlive: false },
  { switchMode: 'socket', keepAlive: true },
] as const;

for (const { switchMode, keepAlive } of modes) {
  test(`${switchMode} mode: a version that crashes 0.2 s after going live is switched back, only the requests in it fail`, async (t) => {
    const setup = await setupDuet(t, {
      switchMode,
      app: { health: '{ path: /health, timeout_s: 10, watch_s: 3 }' },
      tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterFirstRequestMs":200}' } },
    });
    const { stderr, load } = await deployBadV2(setup, keepAlive);
    await assertCrashVerdict(setup, stderr, 1, 3);
    assert.match(stderr, /sample-app: crashing 200 ms after the first request/, 'the end of its log');
    assertOnlyTheCrashFailed(load);
    await assertBackOnBlue(setup);
  });

  test(`${switchMode} mode: a version that crashes 3 s after going live is switched back, only the requests in it fail`, async (t) => {
    const setup = await setupDuet(t, {
      switchMode,
      app: { health: '{ path: /health, timeout_s: 10, watch_s: 6 }' },
      tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterMs":3000,"crashExitCode":7}' } },
    });
    const { stderr, load } = await deployBadV2(setup, keepAlive);
    await assertCrashVerdict(setup, stderr, 7, 6);
    assertOnlyTheCrashFailed(load);
    await assertBackOnBlue(setup);
  });
}

test('a version whose health check starts failing after going live is switched back', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 10, watch_s: 5 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"healthFailAfterMs":500}' } },
  });
  const { stderr } = await deployBadV2(setup, false);
  assert.match(stderr, /watch: green GET \/health answered HTTP 500 3 times in a row, \d\.\d s after going live; switched back to blue/);
  await assertBackOnBlue(setup);
});

test('a version that hangs after going live (alive, answering nothing) is switched back', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 10, watch_s: 10 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"hangAfterMs":300}' } },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const failed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /watch: green GET \/health got no answer \(no answer within 2000 ms\) 3 times in a row/);
  await assertBackOnBlue(setup);
});

test('a healthy version passes the watch; deploy reports success only after it', async (t) => {
  const setup = await setupDuet(t, { app: { health: '{ path: /health, timeout_s: 10, watch_s: 1 }' } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const started = Date.now();
  await setup.succeed(['deploy', '--ref', 'v2']);
  assert.ok(Date.now() - started >= 1000, 'the deploy waited for the watch');
  const [last] = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.equal(last.outcome, 'success');
  const watch = last.steps.find((step: { name: string }) => step.name === 'watch');
  assert.match(watch.detail, /healthy for 1 s \(\d+ probes, slowest \d+ ms\)/);
  // A repeated deploy of what is live does not watch again.
  const again = await setup.succeed(['deploy', '--ref', 'v2']);
  assert.match(again.stdout + again.stderr, /already live/);
  const [noop] = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.match(noop.steps.find((step: { name: string }) => step.name === 'watch').detail, /live and watched since/);
});

test('health.watch_s: 0 turns the watch off', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 10, watch_s: 0 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterMs":1500}' } },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  const [last] = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.equal(last.steps.find((step: { name: string }) => step.name === 'watch').status, 'skipped');
});

/**
 * v1 live on blue; v2 will be watched for 60 s, and green dies when the test asks (a request to
 * CONTROL_DIR's die-on path) rather than by a timer in the app, which a loaded machine's slow
 * steps would race.
 */
async function setupKillableGreen(t: TestContext, options: SetupOptions = {}): Promise<{ setup: DuetSetup; killGreen(): Promise<void> }> {
  const control = await tempDir(t, 'duet-control');
  const setup = await setupDuet(t, { ...options, app: { env: `{ CONTROL_DIR: "${control}" }` } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const config = await readFile(setup.configPath, 'utf8');
  const watchedLong = config.replace('watch_s: 0.3', 'watch_s: 60');
  assert.notEqual(watchedLong, config, "setupDuet's health line changed: update this");
  await writeFile(setup.configPath, watchedLong);
  const killGreen = async (): Promise<void> => {
    await writeFile(join(control, 'die-on.green'), '/die');
    await setup.get('/die').catch(() => undefined);
  };
  return { setup, killGreen };
}

/** Watch steps started so far, in the journal (a watch that skips starts too). */
const watchStarts = async (setup: DuetSetup): Promise<number> =>
  (await readFile(setup.app.paths.journal, 'utf8')).split('"step":"watch","status":"started"').length - 1;

async function untilWatching(setup: DuetSetup, count: number, what: () => string): Promise<void> {
  assert.ok(await pollUntil(async () => ((await watchStarts(setup)) >= count ? true : undefined), { timeoutMs: 30_000 }), what());
}

test('duet killed during the watch: a re-run goes on watching from the switch and converges', async (t) => {
  const { setup, killGreen } = await setupKillableGreen(t);
  const before = await watchStarts(setup);
  const deploying = execa('node', [cliPath(), '--config', setup.configPath, 'deploy', '--ref', 'v2'], { reject: false, stdin: 'ignore' });
  await untilWatching(setup, before + 1, () => 'the deploy reached the watch');
  deploying.kill('SIGKILL');
  await deploying;
  assert.equal((await setup.duet(['enabled-instance'])).stdout, 'green\n', 'killed while green is live');

  const rerun = setup.start(['deploy', '--ref', 'v2']);
  await untilWatching(setup, before + 2, () => `the re-run watches: ${rerun.output()}`);
  await killGreen();
  const result = await rerun.done;
  assert.equal(result.code, 1, `the re-run watched on and saw the crash: ${result.stderr}`);
  assert.match(result.stderr, /watch: green exited/);
  await assertBackOnBlue(setup);
  const history = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.equal(history[1].outcome, 'interrupted');
});

test('standby: stop: the previous color is stopped only after the watch, so a crash during it still switches back', async (t) => {
  const { setup, killGreen } = await setupKillableGreen(t, { standby: 'stop' });
  const before = await watchStarts(setup);
  const deploying = setup.start(['deploy', '--ref', 'v2']);
  await untilWatching(setup, before + 1, () => `the deploy watches: ${deploying.output()}`);
  assert.equal((await setup.duet(['pid', 'blue'])).code, 0, 'blue still runs during the watch');
  await killGreen();
  const { code, stderr } = await deploying.done;
  assert.equal(code, 1, stderr);
  assert.match(stderr, /watch: green exited with code 1 .*; switched back to blue/);
  await assertBackOnBlue(setup);
});
