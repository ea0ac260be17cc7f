import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { indexBody } from '../../src/http/dashboard-pages.js';
import { appStateOf, type AppStatus, type ColorStatus } from '../../src/pipeline/status.js';

const color = (over: Partial<ColorStatus>): ColorStatus => ({
  port: 20201,
  pid: 4711,
  state: 'healthy',
  running: true,
  healthy: true,
  restarts: 0,
  downSince: null,
  lastProblem: null,
  revision: 'a'.repeat(40),
  ref: 'refs/tags/v1',
  startedAt: '2026-12-03T08:00:00.000Z',
  configChanged: null,
  ...over,
});

test('the dashboard puts a live color that is down, both colors crashing, the last failover and a live breaking release first', () => {
  const status: AppStatus = {
    app: 'cafeteria',
    state: 'on-fallback',
    standby: 'warm',
    enabled: 'green',
    serving: 'blue',
    colors: {
      blue: color({ restarts: 1, lastProblem: 'was killed by SIGKILL', configChanged: 'environment' }),
      green: color({
        pid: null,
        state: 'down',
        running: false,
        healthy: false,
        restarts: 2,
        downSince: '2026-12-03T08:10:00.000Z',
        lastProblem: 'exited with code 1',
      }),
    },
    deploying: null,
    supervisedBy: 4242,
    lastFailover: { id: '20261203-081000-abcdef', at: '2026-12-03T08:10:05.000Z', from: 'green', to: 'blue', reason: 'green exited 3 times within 60 s' },
    bothCrashed: { at: '2026-12-03T08:20:00.000Z', detail: 'blue: exited with code 1; green: exited with code 1' },
    breaking: { sha: 'b'.repeat(40), before: 'c'.repeat(40), deploy: '20261203-080000-abcdef', at: '2026-12-03T08:00:00.000Z' },
    tls: { mode: 'acme', expiresAt: '2026-12-16T08:00:00.000Z', daysLeft: 13 },
  };
  const page = String(indexBody([{ name: 'cafeteria', status, queued: 0, running: undefined, deploys: [] }], (path) => path));
  assert.match(page, /<strong>green \(live\) is down<\/strong> since 2026-12-03 08:10 UTC: exited with code 1 — blue answers through nginx/);
  assert.match(page, /Failed over from green to blue at 2026-12-03 08:10 UTC: green exited 3 times within 60 s/);
  assert.match(page, /href="\/deploys\/20261203-081000-abcdef\/view"/);
  assert.match(
    page,
    /Both colors crashed at 2026-12-03 08:20 UTC: blue: exited with code 1; green: exited with code 1\. A request or the machine, not the version: no failover/,
  );
  assert.match(
    page,
    /Breaking release live: bbbbbbb \(deploy 20261203-080000-abcdef, .*\): no fallback to the other color, which stays stopped; a rollback to ccccccc needs --force/,
  );
  assert.match(page, /<p class="alert bad">HTTPS certificate expires in 13 days \(2026-12-16 08:00 UTC\)/);
  assert.match(page, /2 restarts/);
  assert.match(page, /1 restart\b/);
  assert.match(page, /badge bad">down</);
  assert.match(page, /environment changed since start: restart pending/, 'a color started before its env files changed says so');
  assert.equal(page.match(/changed since start/g)?.length, 1, 'only that color');
});

test("an app's state from its colors and what the public port shows: one model for the CLI, the dashboard and the API", () => {
  const healthy = color({});
  const down = color({ pid: null, state: 'down', running: false, healthy: false });
  const unhealthy = color({ state: 'unhealthy', healthy: false });
  const stopped = color({ pid: null, state: 'stopped', running: false, healthy: false });
  assert.deepEqual(appStateOf(undefined, undefined, { blue: stopped, green: stopped }), { state: 'not-deployed', standby: 'none' });
  assert.deepEqual(appStateOf('blue', 'blue', { blue: healthy, green: healthy }), { state: 'live', standby: 'warm' });
  assert.deepEqual(appStateOf('blue', 'blue', { blue: healthy, green: stopped }), { state: 'live', standby: 'stopped' });
  assert.deepEqual(appStateOf('blue', 'blue', { blue: unhealthy, green: healthy }), { state: 'unhealthy', standby: 'warm' });
  assert.deepEqual(appStateOf('blue', 'green', { blue: down, green: healthy }), { state: 'on-fallback', standby: 'warm' });
  assert.deepEqual(appStateOf('blue', 'green', { blue: healthy, green: healthy }), { state: 'mismatch', standby: 'warm' });
  assert.deepEqual(appStateOf('blue', undefined, { blue: down, green: down }), { state: 'down', standby: 'down' });
});
