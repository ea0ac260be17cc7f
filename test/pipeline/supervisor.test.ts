import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { readSupervision } from '../../src/pipeline/supervision-record.js';
import { assertOnlyInFlightFailed, startLoad } from '../support/load.js';
import { REPO, supervised, until, type Supervised } from '../support/supervised.js';
import { journalRuns } from '../support/journal.js';

for (const switchMode of ['socket', 'port'] as const) {
  test(`${switchMode} mode: kill -9 of the live color under duet serve: restarted at once, only the requests in it fail`, async (t) => {
    const s = await supervised(t, { switchMode });
    const status = await s.status();
    assert.equal(status.supervisedBy, await pidOfServe(s));
    const killed = status.colors.green.pid as number;
    const load = startLoad(s.setup.listenPort, { concurrency: 4, keepAlive: switchMode === 'socket' });
    try {
      process.kill(killed, 'SIGKILL');
      await until('green runs again', async () => {
        const now = await s.status();
        return now.colors.green.state === 'healthy' && now.colors.green.pid !== killed ? now : undefined;
      });
    } finally {
      await load.stop();
    }
    const report = load.report;
    t.diagnostic(`${report.requests} requests: ${JSON.stringify(report.versions)}`);
    assertOnlyInFlightFailed(report, 4);
    assert.ok((report.versions.v1 ?? 0) > 0, 'the standby (v1) answered while green was down');
    const after = await s.status();
    assert.equal(after.enabled, 'green', 'one crash is not a failover');
    assert.equal(after.colors.green.restarts, 1);
    assert.match(after.colors.green.lastProblem, /was killed by SIGKILL|exited/);
    assert.match(s.serve.output(), /restarted green \(live\) as pid \d+/);
  });
}

async function pidOfServe(s: Supervised): Promise<number> {
  return s.serve.child.pid!;
}

test('a live color in a crash loop is failed over to the warm standby, journaled and reported, and never failed back', async (t) => {
  // v2 passes its deploy (watch_s 0.3 s) and then crashes 1.2 s after every start.
  const s = await supervised(t, { switchMode: 'socket', v2: { 'behaviour.json': '{"crashAfterMs":1200}' } });
  const status = await until('the failover', async () => {
    const now = await s.status();
    return now.enabled === 'blue' && now.lastFailover ? now : undefined;
  });
  assert.equal(status.lastFailover.from, 'green');
  assert.equal(status.lastFailover.to, 'blue');
  assert.match(status.lastFailover.reason, /green exited 3 times within 60 s/);
  assert.match((await s.setup.get('/')).body, /cafeteria v1/);

  const failovers = (await journalRuns(s.setup.app.paths.journal)).filter((r) => r.kind === 'failover');
  assert.equal(failovers.length, 1);
  assert.equal(failovers[0]!.outcome, 'success');
  assert.match(failovers[0]!.reason ?? '', /exited 3 times/);
  const history = JSON.parse((await s.setup.succeed(['history', '--json'])).stdout);
  assert.equal(history[0].kind, 'failover');

  // The environment's Deployment now names v1's commit, with the reason.
  const v1 = await s.setup.repo.revParse('v1^{commit}');
  await s.github.waitFor((requests) =>
    requests.some((r) => /\/deployments\/\d+\/statuses$/.test(r.path) && /Failover to blue/.test(String((r.body as any)?.description))),
  );
  const created = s.github.matching(new RegExp(`/repos/${REPO}/deployments$`), 'POST').map((r) => r.body as any);
  assert.ok(
    created.some((d) => d.ref === v1 && d.environment === 'production'),
    JSON.stringify(created),
  );
  assert.match(s.serve.output(), /FAILOVER from green to blue/);
  // Commit statuses too, where people look without Deployments: v2 is no longer live, v1 is again.
  const v2 = await s.setup.repo.revParse('v2^{commit}');
  await s.github.waitFor((requests) =>
    requests.some((r) => r.path.endsWith(`/statuses/${v1}`) && /Live again by a failover/.test(String((r.body as any)?.description))),
  );
  const onV2 = s.github.matching(new RegExp(`/repos/${REPO}/statuses/${v2}$`), 'POST').map((r) => r.body as any);
  assert.ok(
    onV2.some((b) => b.state === 'error' && /^No longer live: failed over to blue \([0-9a-f]{7}\): green exited 3 times/.test(b.description)),
    JSON.stringify(onV2),
  );

  // green keeps crashing as the standby: restarted with backoff, never given the traffic back.
  const metrics = await (await fetch(`${s.serve.url}/metrics`, { headers: { authorization: 'Bearer test-api-token-0123456789' } })).text();
  assert.match(metrics, /duet_failovers_total\{app="cafeteria"\} 1/);
  assert.match(metrics, /duet_instance_restarts_total\{app="cafeteria",color="green"\} [2-9]/);
  assert.equal((await s.status()).enabled, 'blue');
});

const FAILOVER_AFTER_2S = { health: '{ path: /health, timeout_s: 10, watch_s: 0.3, failover_after_s: 2 }' };

test('a live color that hangs (alive, its health check unanswered) is failed over once that lasted health.failover_after_s', async (t) => {
  const s = await supervised(t, { switchMode: 'port', app: FAILOVER_AFTER_2S, v2: { 'behaviour.json': '{"hangAfterMs":1000}' } });
  const status = await until('the failover', async () => {
    const now = await s.status();
    return now.enabled === 'blue' && now.lastFailover ? now : undefined;
  });
  assert.match(status.lastFailover.reason, /green has failed its health checks for [2-9] s \(last: GET \/health got no answer .* times in a row\)/);
  assert.equal((await s.setup.get('/')).color, 'blue');
});

test('a crashed standby is restarted, so the rollback target stays warm', async (t) => {
  const s = await supervised(t, { switchMode: 'socket' });
  const killed = (await s.pidOf('blue'))!;
  process.kill(killed, 'SIGKILL');
  const status = await until('blue runs again', async () => {
    const now = await s.status();
    return now.colors.blue.state === 'healthy' && now.colors.blue.pid !== killed ? now : undefined;
  });
  assert.equal(status.enabled, 'green');
  assert.equal(status.colors.blue.restarts, 1);
  // The socket the restarted app made anew is opened to nginx's workers once it answers: it is the fallback.
  await until('blue.sock is open to nginx', async () => ((await stat(s.setup.app.paths.socket.blue)).mode & 0o777) === 0o666 || undefined);
});

test('a color stopped on purpose is not restarted', async (t) => {
  const s = await supervised(t, { switchMode: 'socket' });
  assert.equal((await s.setup.succeed(['stop-instance', 'blue'])).stdout, 'stopped\n');
  // The round that sees blue stopped is the one that would restart it: wait for that round.
  await until('supervision saw blue stopped', async () => ((await readSupervision(s.setup.app))?.colors.blue.health === 'stopped' ? true : undefined));
  const status = await s.status();
  assert.equal(status.colors.blue.state, 'stopped');
  assert.equal(status.colors.blue.restarts ?? 0, 0);
});

test('no flapping: traffic that came to blue by a failover stays there while blue runs, even unhealthy', async (t) => {
  // green (v2) hangs once, is failed over to blue and restarted as a healthy standby.
  const s = await supervised(t, { switchMode: 'socket', app: FAILOVER_AFTER_2S, v2: { 'behaviour.json': '{"hangAfterMs":800,"hangOnce":true}' } });
  await until('the failover to blue', async () => ((await s.status()).lastFailover ? true : undefined));
  await until('green is a healthy standby again', async () => ((await s.status()).colors.green.state === 'healthy' ? true : undefined));

  // Now blue hangs: green is healthy, but moving traffic back would be a flap.
  const blue = (await s.pidOf('blue'))!;
  process.kill(blue, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(blue, 'SIGCONT');
    } catch {
      // restarted and gone already
    }
  });
  await until('supervision judged blue', () =>
    Promise.resolve(
      /blue \(live\) .*there is no failover: traffic came to blue by a failover from green .* does not move it back while blue runs/.test(s.serve.output()) ||
        undefined,
    ),
  );
  const status = await s.status();
  assert.equal(status.enabled, 'blue');
  assert.equal((await journalRuns(s.setup.app.paths.journal)).filter((r) => r.kind === 'failover').length, 1);
});
