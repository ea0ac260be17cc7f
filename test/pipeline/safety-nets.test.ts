import { test } from '../support/test.js';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { startLoad } from '../support/load.js';
import { supervised, until, type Supervised } from '../support/supervised.js';
import { journalRuns } from '../support/journal.js';

// The safety nets (fallback, supervision, failover) must never make an outage worse (issue 23).

const metricsOf = async (s: Supervised): Promise<string> =>
  (await fetch(`${s.serve.url}/metrics`, { headers: { authorization: 'Bearer test-api-token-0123456789' } })).text();

const failoverRuns = async (s: Supervised): Promise<number> => (await journalRuns(s.setup.app.paths.journal)).filter((r) => r.kind === 'failover').length;

async function killColor(s: Supervised, color: 'blue' | 'green'): Promise<void> {
  const pid = await s.pidOf(color);
  assert.ok(pid, `${color} runs`);
  process.kill(pid, 'SIGKILL');
}

test('both colors crashing on start: no failover, both restarted within seconds, said loudly; back soon after the cause goes', async (t) => {
  const s = await supervised(t, { switchMode: 'socket' });
  await s.control('crash-on-start', '1');
  await killColor(s, 'green');
  await killColor(s, 'blue');
  // Five failed starts each: an uncapped backoff would wait 8-16 s by now.
  const crashing = await until(
    'both colors failed to start five times',
    async () => {
      const now = await s.status();
      return now.colors.blue.restarts >= 5 && now.colors.green.restarts >= 5 ? now : undefined;
    },
    60_000,
  );
  assert.equal(crashing.enabled, 'green', 'no failover');
  assert.match(crashing.bothCrashed?.detail ?? '', /blue: .*; green: /);
  assert.match(s.serve.output(), /BOTH COLORS CRASHED/);
  assert.match(await metricsOf(s), /duet_both_colors_crashed_total\{app="cafeteria"\} 1/);

  await s.control('crash-on-start', undefined);
  const removed = Date.now();
  const back = await pollUntil(async () => ((await s.setup.get('/').catch(() => undefined))?.status === 200 ? Date.now() - removed : undefined), {
    timeoutMs: 30_000,
    maxIntervalMs: 50,
  });
  t.diagnostic(`the public port answered ${back} ms after the cause was removed`);
  assert.ok(back !== undefined && back < 8_000, `the public port answers within seconds of the fix (${back} ms)`);
  assert.equal(await failoverRuns(s), 0);
});

test('slow is not dead: a slow health check for a few seconds neither fails over nor restarts the live color', async (t) => {
  const s = await supervised(t, { switchMode: 'socket' });
  await s.control('health-delay-ms.green', '2500');
  // As long as the old verdict took (3 failed 2 s probes in a row, about 7 s), which failed over at once.
  await until('green judged unhealthy', async () => ((await s.status()).colors.green.state === 'unhealthy' ? true : undefined));
  await s.control('health-delay-ms.green', undefined);
  const status = await until('green healthy again', async () => {
    const now = await s.status();
    return now.colors.green.state === 'healthy' ? now : undefined;
  });
  assert.equal(status.enabled, 'green', 'no failover for a few slow seconds');
  assert.equal(status.colors.green.restarts ?? 0, 0, 'nor a restart');
  assert.equal(await failoverRuns(s), 0);
});

test('failover: false: a live color that stays unhealthy is restarted, never failed over', async (t) => {
  const s = await supervised(t, {
    switchMode: 'port',
    app: { failover: 'false', health: '{ path: /health, timeout_s: 10, watch_s: 0.3, failover_after_s: 1 }' },
  });
  await s.control('health-delay-ms.green', '2500');
  const restarted = await until('green restarted for staying unhealthy', async () => {
    const now = await s.status();
    return now.colors.green.restarts >= 1 ? now : undefined;
  });
  assert.equal(restarted.enabled, 'green');
  assert.equal(await failoverRuns(s), 0);
  assert.doesNotMatch(s.serve.output(), /FAILOVER/);
});

test('a dead live color is failed over to a healthy standby even when traffic came to it by a failover', async (t) => {
  const s = await supervised(t, {
    switchMode: 'socket',
    app: { health: '{ path: /health, timeout_s: 10, watch_s: 0.3, failover_after_s: 1 }' },
    v2: { 'behaviour.json': '{"hangAfterMs":800,"hangOnce":true}' },
  });
  await until('the failover to blue', async () => ((await s.status()).lastFailover?.to === 'blue' ? true : undefined));
  await until('green is a healthy standby again', async () => ((await s.status()).colors.green.state === 'healthy' ? true : undefined));

  // blue dies and cannot start again: green is healthy, so traffic goes back to it.
  await s.control('crash-on-start.blue', '1');
  await killColor(s, 'blue');
  const status = await until('the failover back to green', async () => {
    const now = await s.status();
    return now.lastFailover?.to === 'green' ? now : undefined;
  });
  assert.equal(status.enabled, 'green');
  assert.match(status.lastFailover.reason, /^blue (has not answered for 1\d s|exited \d times within 60 s)/);
  assert.match((await s.setup.get('/')).body, /cafeteria v2/);
  assert.equal(await failoverRuns(s), 2);
});

for (const switchMode of ['port', 'socket'] as const) {
  test(`${switchMode} mode: a deploy while the live color is dead makes the standby live first and updates the dead one; no request fails`, async (t) => {
    const setup = await setupDuet(t, {
      switchMode,
      // A slow install: stopping the color that serves for it would show as failed requests.
      app: { install: '"sleep 1; mkdir -p node_modules"' },
      tags: { v1: {}, v2: { VERSION: 'v2\n' }, v3: { VERSION: 'v3\n' } },
    });
    await setup.succeed(['deploy', '--ref', 'v1']);
    await setup.succeed(['deploy', '--ref', 'v2']);
    // The kill costs only the requests in flight (tested elsewhere): the load starts once the fallback answers.
    const killLiveAndWaitForFallback = async (fallback: RegExp) => {
      process.kill(JSON.parse((await setup.succeed(['status', '--json'])).stdout).colors.green.pid as number, 'SIGKILL');
      await pollUntil(async () => (fallback.test((await setup.get('/').catch(() => undefined))?.body ?? '') ? true : undefined), { timeoutMs: 10_000 });
    };
    await killLiveAndWaitForFallback(/cafeteria v1/);

    const refused = await setup.duet(['stop-instance', 'blue']);
    assert.equal(refused.code, 1, 'the standby that answers is not stopped');
    assert.match(refused.stderr, /blue is what answers cafeteria's public port: green \(live\) is down and blue answers through nginx's fallback/);

    const load = startLoad(setup.listenPort, { concurrency: 4, keepAlive: switchMode === 'socket' });
    let deployed;
    try {
      deployed = await setup.duet(['deploy', '--ref', 'v3']);
    } finally {
      await load.stop();
    }
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stderr, /green \(live\) is down and blue answers through the fallback: making blue live before updating green/);
    const report = load.report;
    t.diagnostic(`${report.requests} requests: ${JSON.stringify(report.versions)}`);
    assert.equal(report.errors + report.non2xx, 0, `failed: ${report.errors} errors, ${report.non2xx} non-2xx, first: ${report.firstError}`);
    assert.ok((report.versions.v3 ?? 0) > 0, 'v3 went live');
    assert.equal((await setup.duet(['enabled-instance'])).stdout, 'green\n');
    assert.match((await setup.get('/')).body, /cafeteria v3/);

    // And a rollback while the live color is dead goes to the standby that answers, failing nothing.
    await killLiveAndWaitForFallback(/cafeteria v1/);
    const again = startLoad(setup.listenPort, { concurrency: 4, keepAlive: switchMode === 'socket' });
    try {
      await setup.succeed(['rollback']);
    } finally {
      await again.stop();
    }
    assert.equal(again.report.non2xx + again.report.errors, 0, `rollback: ${again.report.firstError}`);
    assert.equal((await setup.duet(['enabled-instance'])).stdout, 'blue\n');
  });
}

for (const switchMode of ['socket', 'port'] as const) {
  test(`${switchMode} mode: requests of death under duet serve: no verdict on the version, no failover, both colors back right after`, async (t) => {
    const s = await supervised(t, { switchMode });
    await s.control('die-on', '/die');
    const load = startLoad(s.setup.listenPort, { concurrency: 2, keepAlive: switchMode === 'socket' });
    const deaths: number[] = [];
    try {
      // Pairs: the first kills the live color, the second comes while it is down and reaches the
      // standby through the fallback, as a stream of them does.
      for (let i = 0; i < 15; i += 1) {
        for (const _ of [1, 2]) deaths.push((await s.setup.get('/die').catch(() => ({ status: 0 }))).status);
        await sleep(600); // the pace of the attack: 30 deaths in about 10 s, not a condition to wait for
      }
    } finally {
      await load.stop();
    }
    const report = load.report;
    t.diagnostic(`deaths answered ${JSON.stringify(deaths)}; load: ${report.requests} requests, ${report.non2xx} non-2xx, ${report.errors} errors`);
    assert.ok(
      deaths.every((status) => status === 502),
      'a request of death gets the 502 of the one color it killed',
    );
    // While the live color restarts, nginx's fallback hands new requests to the standby, a death
    // among them too: at this pace both colors are down most of the time (bench: request of death).
    assert.equal(report.errors, 0);
    const stopped = Date.now();
    const status = await until('both colors healthy again', async () => {
      const now = await s.status();
      return now.colors.blue.state === 'healthy' && now.colors.green.state === 'healthy' ? now : undefined;
    });
    t.diagnostic(`both colors healthy ${Date.now() - stopped} ms after the last death`);
    assert.equal(status.enabled, 'green', 'requests of death are no verdict on the version');
    assert.match(status.bothCrashed?.detail ?? '', /exited|killed/);
    assert.equal(await failoverRuns(s), 0);
  });
}
