import { test } from '../support/test.js';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { startLoad } from '../support/load.js';
import { supervised, until, type Supervised } from '../support/supervised.js';
import { journalRuns } from '../support/journal.js';

// socket_activation: duet serve holds each color's socket across its restarts (issue 23: "60
// requests of death in 20 s leave the standby up and the public port answering every other request").

const activation = { switchMode: 'socket' as const, app: { socket_activation: 'true' } };

const failoverRuns = async (s: Supervised): Promise<number> => (await journalRuns(s.setup.app.paths.journal)).filter((r) => r.kind === 'failover').length;

/**
 * The colors the CLI deployed hold their sockets alone; duet serve holds the socket of each
 * process it starts. So v3 is deployed through serve's API: blue runs it, live, its socket
 * serve's; green (v2) is the standby.
 */
async function deployThroughServe(s: Supervised): Promise<void> {
  await s.setup.repo.tag('v3', { VERSION: 'v3\n' });
  const answer = await fetch(`${s.serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: 'Bearer test-api-token-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ ref: 'v3' }),
  });
  assert.equal(answer.status, 202, await answer.text());
  await until('v3 live on blue, healthy', async () => {
    const now = await s.status();
    return now.enabled === 'blue' && now.colors.blue.state === 'healthy' && /cafeteria v3/.test((await s.setup.get('/')).body) ? true : undefined;
  });
}

test('socket_activation: requests of death at the audit pace, faster than a start, kill the live color only; the standby is never touched, no failover, every other request waits for the restart', async (t) => {
  const s = await supervised(t, activation);
  await deployThroughServe(s);
  const before = await s.status();
  // Each start takes longer than the attack's pace, as on a busy machine: the next request of
  // death is queued before the process listens, so supervision's looks never find it up; only
  // the probe sent at its restart, queued first, is answered before the death kills it.
  await s.control('start-delay-ms', '500');
  await s.control('die-on', '/die');
  const load = startLoad(s.setup.listenPort, { concurrency: 2, keepAlive: true });
  const deaths: number[] = [];
  try {
    // The audit's pace: 60 in 21 s, here 30 of them.
    for (let i = 0; i < 30; i += 1) {
      deaths.push((await s.setup.get('/die').catch(() => ({ status: 0 }))).status);
      await sleep(350); // the attack's pace, not a condition to wait for
    }
  } finally {
    await load.stop();
  }
  const report = load.report;
  const after = await until('blue healthy again', async () => {
    const now = await s.status();
    return now.colors.blue.state === 'healthy' ? now : undefined;
  });
  t.diagnostic(
    `deaths ${JSON.stringify(deaths)}; load: ${report.requests} requests, ${report.non2xx} non-2xx ${JSON.stringify(report.statuses)}, ${report.errors} errors`,
  );
  t.diagnostic(`blue restarted ${after.colors.blue.restarts - before.colors.blue.restarts} times`);
  const supervision = s.serve
    .output()
    .split('\n')
    .filter((line) => line.includes('"component":"supervision"'))
    .map((line) => `${new Date(JSON.parse(line).time).toISOString().slice(17, 23)} ${JSON.parse(line).msg}`)
    .join('\n');
  assert.equal(after.colors.green.pid, before.colors.green.pid, `the standby never received a request of death; supervision said:\n${supervision}`);
  assert.equal(after.colors.green.restarts, before.colors.green.restarts);
  assert.equal(after.enabled, 'blue', 'no failover');
  assert.equal(await failoverRuns(s), 0);
  assert.equal(after.bothCrashed?.at, before.bothCrashed?.at, 'both colors never crashed');
  assert.ok(after.colors.blue.restarts - before.colors.blue.restarts >= 20, 'blue was killed and restarted again and again');
  assert.equal(report.errors, 0);
  // What fails is what the dying process had accepted besides the death (the load's two loops
  // at most): never what arrived while it restarted, which waited in the socket.
  assert.ok(report.non2xx <= 2 * deaths.length, `at most the requests in flight in each dying process: ${report.non2xx} of ${report.requests}`);
  assert.equal(report.non2xx, report.statuses[502] ?? 0);
});

test('socket_activation: a live color that cannot start again gives its socket up: the fallback answers at once, and the failed starts fail over', async (t) => {
  const s = await supervised(t, activation);
  await deployThroughServe(s);
  await s.control('crash-on-start.blue', '1');
  const load = startLoad(s.setup.listenPort, { concurrency: 2, keepAlive: true });
  try {
    process.kill((await s.status()).colors.blue.pid as number, 'SIGKILL');
    const status = await until('the failover to green', async () => {
      const now = await s.status();
      return now.lastFailover?.to === 'green' ? now : undefined;
    });
    assert.match(status.lastFailover.reason, /^blue has not answered for 1\d s/);
  } finally {
    await load.stop();
  }
  const report = load.report;
  t.diagnostic(`load: ${report.requests} requests, ${report.non2xx} non-2xx ${JSON.stringify(report.statuses)}, ${report.errors} errors`);
  assert.equal(report.errors, 0);
  // The kill costs what green held; each failed start what reached its process before it died.
  assert.ok(report.non2xx <= 2 * 2 * 4, `only requests in flight in a dying process failed: ${report.non2xx}`);
  assert.match((await s.setup.get('/')).body, /cafeteria v2/);
  const back = await pollUntil(async () => ((await s.setup.get('/').catch(() => undefined))?.status === 200 ? true : undefined), { timeoutMs: 5000 });
  assert.ok(back);
});
