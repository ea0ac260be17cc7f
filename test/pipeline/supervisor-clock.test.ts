import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Color } from '../../src/config/schema.js';
import { isSameProcessAlive } from '../../src/instance/process-identity.js';
import { runnerOf } from '../../src/instance/runner.js';
import { acquireLock } from '../../src/pipeline/lock.js';
import { readSupervision } from '../../src/pipeline/supervision-record.js';
import { AppSupervisor, type SupervisionObserver } from '../../src/pipeline/supervisor.js';
import { switchOf } from '../../src/switch/switch.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { until } from '../support/supervised.js';
import { tempDir } from '../support/tmp.js';

/** The manual's figure (docs/deploy.md: a live color not answering for 10 s is failed over): a changed constant must fail here. */
const FAILOVER_AFTER_DOWN_MS = 10_000;

/**
 * duet serve's supervision of real colors (v1 on blue, v2 on green live, both warm) run tick by
 * tick in this process, with the clock it is given: minutes of backoff and failover deadlines
 * pass in the test without sleeping through them. The processes, their pidfiles, health checks
 * and restarts are real; only `now` is the test's.
 */
interface Clocked {
  setup: DuetSetup;
  supervisor: AppSupervisor;
  /** What the supervisor tells; another supervisor of the same app (a restarted duet serve) may share it. */
  observer: SupervisionObserver;
  /** What supervision told its owner, one line each: `down green (live)`, `restarted blue (standby)`, ... */
  told: string[];
  /** Ticks at `now` until the color is healthy again (a restarted process takes real time to listen). */
  healthyAt(color: Color, now: number): Promise<void>;
  /** kill -9 of the color's process; returns once it is gone. */
  kill(color: Color): Promise<void>;
  restarts(color: Color): number;
  /** A commit on top of the color's checkout: supervision cannot restart it at the revision its pidfile names. */
  moveCheckout(color: Color): Promise<void>;
  /** Undoes moveCheckout. */
  restoreCheckout(color: Color): Promise<void>;
}

/** `control`: the sample app's CONTROL_DIR, to change how a color behaves while it runs. */
async function clocked(t: TestContext, options: { control?: string } = {}): Promise<Clocked> {
  const setup = await setupDuet(t, { switchMode: 'port', ...(options.control ? { app: { env: `{ CONTROL_DIR: "${options.control}" }` } } : {}) });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  const told: string[] = [];
  const observer: SupervisionObserver = {
    colorDown: (_app, color, role) => void told.push(`down ${color} (${role})`),
    colorRestarted: (_app, color, role) => void told.push(`restarted ${color} (${role})`),
    colorBack: (_app, color, role) => void told.push(`back ${color} (${role})`),
    failedOver: (_app, result) => void told.push(`failover to ${result.to}`),
    bothCrashed: () => void told.push('both crashed'),
    problem: (_app, message) => void told.push(`problem: ${message}`),
  };
  const supervisor = await AppSupervisor.open(setup.config, setup.app, observer);
  t.after(() => supervisor.close());
  const clock = {
    setup,
    supervisor,
    observer,
    told,
    async healthyAt(color: Color, now: number) {
      await until(`${color} is healthy`, async () => {
        await supervisor.tick(now);
        return supervisor.record().colors[color].health === 'healthy' || undefined;
      });
    },
    async kill(color: Color) {
      const instance = await runnerOf(setup.app).running(color);
      assert.ok(instance, `${color} runs`);
      process.kill(instance.pid, 'SIGKILL');
      await until(`${color} (pid ${instance.pid}) is gone`, async () => !(await isSameProcessAlive(instance)) || undefined);
    },
    restarts: (color: Color) => supervisor.record().colors[color].restarts,
    async moveCheckout(color: Color) {
      const commit = ['-c', 'user.name=test', '-c', 'user.email=test@example.com', 'commit', '--quiet', '--allow-empty', '-m', 'moved on'];
      await execa('git', commit, { cwd: setup.app.paths.checkout[color] });
    },
    async restoreCheckout(color: Color) {
      await execa('git', ['reset', '--quiet', '--hard', 'HEAD~1'], { cwd: setup.app.paths.checkout[color] });
    },
  };
  await clock.healthyAt('blue', Date.now());
  await clock.healthyAt('green', Date.now());
  told.length = 0;
  return clock;
}

test('restarts of a color that keeps crashing back off (at once, 1 s, 2 s, 4 s), and a healthy minute forgets the crashes', async (t) => {
  const c = await clocked(t);
  let now = Date.now();
  // The standby crashes each time it is back: the live color serves, so nothing shortens its backoff.
  const waits: number[] = [];
  for (const expectedMs of [0, 1000, 2000, 4000]) {
    await c.kill('blue');
    const before = c.restarts('blue');
    const crashedAt = now;
    await c.supervisor.tick(crashedAt);
    if (expectedMs > 0) {
      await c.supervisor.tick(crashedAt + expectedMs - 1);
      assert.equal(c.restarts('blue'), before, `crash ${waits.length + 1}: not restarted before ${expectedMs} ms`);
      await c.supervisor.tick(crashedAt + expectedMs);
    }
    assert.equal(c.restarts('blue'), before + 1, `crash ${waits.length + 1}: restarted after ${expectedMs} ms`);
    waits.push(expectedMs);
    now = crashedAt + expectedMs;
    await c.healthyAt('blue', now);
  }
  assert.deepEqual(waits, [0, 1000, 2000, 4000]);

  // Healthy for 30 s is not enough: the next crash still waits 8 s.
  await c.supervisor.tick(now + 30_000);
  now += 30_000;
  await c.kill('blue');
  await c.supervisor.tick(now);
  await c.supervisor.tick(now + 7_999);
  assert.equal(c.restarts('blue'), 4, 'the fifth crash waits 8 s');
  await c.supervisor.tick(now + 8_000);
  assert.equal(c.restarts('blue'), 5);
  now += 8_000;
  await c.healthyAt('blue', now);

  // A minute healthy: the crashes are forgotten, and the next one is restarted at once.
  await c.supervisor.tick(now + 60_000);
  now += 60_000;
  await c.kill('blue');
  await c.supervisor.tick(now);
  assert.equal(c.restarts('blue'), 6, 'restarted at once after a healthy minute');
  await c.healthyAt('blue', now);
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green', 'a crashing standby moves no traffic');
  assert.equal(c.told.filter((line) => line === 'restarted blue (standby)').length, 6);
});

test("restarts are counted per cause: a color judged unhealthy after two crashes is restarted at once, not after the crashes' backoff", async (t) => {
  const control = await tempDir(t, 'duet-control');
  const c = await clocked(t, { control });
  let now = Date.now();
  // Two crashes after serving: the second restart waits 1 s, a third crash would wait 2 s.
  for (const waitMs of [0, 1000]) {
    await c.kill('blue');
    await c.supervisor.tick(now);
    await c.supervisor.tick(now + waitMs);
    now += waitMs;
    await c.healthyAt('blue', now);
  }
  assert.equal(c.restarts('blue'), 2);

  // Another cause: blue runs on but its health check gets no answer (each probe waits its 2 s).
  await writeFile(join(control, 'health-delay-ms.blue'), '600000');
  for (let i = 0; i < 3; i += 1) await c.supervisor.tick((now += 500));
  assert.equal(c.supervisor.record().colors.blue.health, 'unhealthy', 'the third failed probe in a row');
  await c.supervisor.tick(now + c.setup.app.health.failover_after_s * 1000);
  assert.equal(c.restarts('blue'), 3, 'unhealthy for failover_after_s: restarted at once, its first failure of this cause');
  await rm(join(control, 'health-delay-ms.blue'));
  await c.healthyAt('blue', now + c.setup.app.health.failover_after_s * 1000);
});

test('while the app is locked supervision waits: a killed live color is neither reported, restarted nor failed over until the lock is released', async (t) => {
  const c = await clocked(t);
  const now = Date.now();
  const lock = await acquireLock(c.setup.app, { command: 'test holds the lock', wait: false });
  let released = false;
  t.after(async () => {
    if (!released) await lock.release();
  });
  const recorded = JSON.stringify(await readSupervision(c.setup.app));
  await c.kill('green');
  // Past every deadline: the restart backoff, the failover of a live color down for 10 s, a minute.
  for (const at of [now, now + 1000, now + FAILOVER_AFTER_DOWN_MS + 1000, now + 61_000]) await c.supervisor.tick(at);
  assert.deepEqual(c.told, [], 'supervision neither judged nor acted while the lock was held');
  assert.equal(await runnerOf(c.setup.app).running('green'), undefined, 'green was not restarted');
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green', 'no failover');
  assert.equal(JSON.stringify(await readSupervision(c.setup.app)), recorded, 'nothing recorded');

  await lock.release();
  released = true;
  const after = now + 62_000;
  await c.supervisor.tick(after);
  assert.deepEqual(c.told, ['down green (live)', 'restarted green (live)'], 'the first look after the lock sees the crash and restarts green');
  await c.healthyAt('green', after);
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green', 'green was restarted, not failed over');
});

test('a live color that cannot come back is failed over once it has not answered for 10 s, not before', async (t) => {
  const c = await clocked(t);
  const now = Date.now();
  await c.moveCheckout('green');
  await c.kill('green');
  for (const at of [now, now + 2000, now + FAILOVER_AFTER_DOWN_MS - 1000]) await c.supervisor.tick(at);
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green', 'down for less than 10 s: no failover yet');
  assert.ok(
    c.told.some((line) => /^problem: green \(live\) cannot be restarted: its checkout holds/.test(line)),
    c.told.join('\n'),
  );

  await c.supervisor.tick(now + FAILOVER_AFTER_DOWN_MS);
  assert.ok(c.told.includes('failover to blue'), c.told.join('\n'));
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'blue');
  assert.match((await c.setup.get('/')).body, /cafeteria v1/);
  assert.match(c.supervisor.record().lastFailover?.reason ?? '', /^green has not answered for 10 s/);
});

test('a restarted duet serve counts a live color as down from its own first look, not from what the one before it saw', async (t) => {
  const c = await clocked(t);
  const now = Date.now();
  await c.moveCheckout('green');
  await c.kill('green');
  await c.supervisor.tick(now);
  assert.ok((await readSupervision(c.setup.app))?.colors.green.downSince, 'the record says since when green is down');
  c.supervisor.close();
  // duet serve was away for longer than the failover's deadline (a restart of duet.service on a
  // slow machine, requests of death meanwhile): nobody watched, so that time is no verdict.
  const back = now + FAILOVER_AFTER_DOWN_MS + 5000;
  const next = await AppSupervisor.open(c.setup.config, c.setup.app, c.observer);
  t.after(() => next.close());
  await next.tick(back);
  await next.tick(back + FAILOVER_AFTER_DOWN_MS - 1000);
  assert.ok(!c.told.includes('failover to blue'), `no failover within 10 s of its own first look:\n${c.told.join('\n')}`);
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green');
  await next.tick(back + FAILOVER_AFTER_DOWN_MS);
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'blue', 'failed over once it saw 10 s without an answer');
});

test('slow is not dead: two health checks of a color without an answer are no verdict, the third in a row makes it unhealthy', async (t) => {
  const control = await tempDir(t, 'duet-control');
  const c = await clocked(t, { control });
  const now = Date.now();
  const delay = join(control, 'health-delay-ms.blue');
  await writeFile(delay, '600000');
  // One look per tick: each probe of blue waits its 2 s and fails.
  for (const at of [now, now + 500]) {
    await c.supervisor.tick(at);
    assert.equal(c.supervisor.record().colors.blue.health, 'healthy', `after a failed probe at +${at - now} ms`);
  }
  assert.deepEqual(c.told, []);
  await c.supervisor.tick(now + 1000);
  const blue = c.supervisor.record().colors.blue;
  assert.equal(blue.health, 'unhealthy', 'the third failed probe in a row');
  assert.match(blue.lastProblem ?? '', /GET \/health got no answer .* 3 times in a row/);
  assert.deepEqual(c.told, ['down blue (standby)']);
  await rm(delay);
  await c.healthyAt('blue', now + 1500);
});

test('a dead live color is not failed over to an unhealthy standby: the standby runs but its health check gets no answer', async (t) => {
  const control = await tempDir(t, 'duet-control');
  const c = await clocked(t, { control });
  const now = Date.now();
  // Every /health of blue, the standby, waits 10 minutes: any probe of it times out.
  await writeFile(join(control, 'health-delay-ms.blue'), '600000');
  await c.moveCheckout('green');
  await c.kill('green');
  for (let at = now; at <= now + FAILOVER_AFTER_DOWN_MS + 2000; at += 2000) await c.supervisor.tick(at);
  assert.ok(!c.told.includes('failover to blue'), c.told.join('\n'));
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green', 'no failover to a standby that fails its health check');
  assert.ok(
    c.told.some((line) => /^problem: green \(live\) has not answered for \d+ s .*there is no failover: blue \(standby\) (is|answers) /.test(line)),
    c.told.join('\n'),
  );
});

test('while nothing answers, a color that cannot come back is tried every 2 s, whatever its backoff', async (t) => {
  const c = await clocked(t);
  const now = Date.now();
  for (const color of ['blue', 'green'] as const) {
    await c.moveCheckout(color);
    await c.kill(color);
  }
  // Seven failed restarts of green: its own backoff would wait 32 s for the next one by now.
  for (let at = now; at <= now + 12_000; at += 2000) await c.supervisor.tick(at);
  assert.equal(c.restarts('green'), 0);
  await c.restoreCheckout('green');
  await c.supervisor.tick(now + 14_000);
  assert.equal(c.restarts('green'), 1, 'green restarted 2 s after its last failed restart');
  await c.healthyAt('green', now + 14_000);
  assert.equal(await switchOf(c.setup.app).configuredColor(c.setup.config), 'green', 'no failover to a standby that does not run');
});
