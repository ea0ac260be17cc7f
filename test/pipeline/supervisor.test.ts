import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { Journal } from '../../src/pipeline/journal.js';
import { readSupervision } from '../../src/pipeline/supervision-record.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup, type SetupOptions } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { assertOnlyInFlightFailed, startLoad } from '../support/load.js';
import { freePort } from '../support/ports.js';
import { startServe, type ServeProcess } from '../support/serve.js';

const REPO = 'inu-appcenter/cafeteria-server';

interface Supervised {
  setup: DuetSetup;
  serve: ServeProcess;
  github: GitHubServer;
  status(): Promise<any>;
  pidOf(color: 'blue' | 'green'): Promise<number | undefined>;
}

/**
 * v1 on blue and v2 on green (live), both warm, then a real duet serve supervising them. serve
 * is killed first when the test ends, so that no restart of its runs while the colors are stopped.
 */
async function supervised(t: TestContext, options: SetupOptions & { v2?: Record<string, string> } = {}): Promise<Supervised> {
  let serve: ServeProcess | undefined;
  t.after(async () => serve?.crash());
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const setup = await setupDuet(t, {
    ...options,
    tags: { v1: {}, v2: { VERSION: 'v2\n', ...options.v2 } },
    top: {
      server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }`,
      github: `{ api_url: "${github.url}", deployments: true }`,
      ...options.top,
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });
  const status = async () => JSON.parse((await setup.succeed(['status', '--json'])).stdout);
  return {
    setup,
    serve,
    github,
    status,
    pidOf: async (color) => (await status()).colors[color].pid ?? undefined,
  };
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const value = await pollUntil(check, { timeoutMs, maxIntervalMs: 100 });
  assert.ok(value !== undefined, `timed out waiting until ${what}`);
  return value;
}

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

  const failovers = (await new Journal(s.setup.app.paths.journal).records()).filter((r) => r.kind === 'failover');
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

  // green keeps crashing as the standby: restarted with backoff, never given the traffic back.
  const metrics = await (await fetch(`${s.serve.url}/metrics`, { headers: { authorization: 'Bearer test-api-token-0123456789' } })).text();
  assert.match(metrics, /duet_failovers_total\{app="cafeteria"\} 1/);
  assert.match(metrics, /duet_instance_restarts_total\{app="cafeteria",color="green"\} [2-9]/);
  assert.equal((await s.status()).enabled, 'blue');
});

test('a live color that hangs (alive, its health check unanswered) is failed over', async (t) => {
  const s = await supervised(t, { switchMode: 'port', v2: { 'behaviour.json': '{"hangAfterMs":1000}' } });
  const status = await until('the failover', async () => {
    const now = await s.status();
    return now.enabled === 'blue' && now.lastFailover ? now : undefined;
  });
  assert.match(status.lastFailover.reason, /GET \/health got no answer .* 3 times in a row/);
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

test('duet never fails back on its own: traffic that came to blue by a failover stays there when blue fails too', async (t) => {
  // green (v2) hangs once, is failed over to blue and restarted as a healthy standby.
  const s = await supervised(t, { switchMode: 'socket', v2: { 'behaviour.json': '{"hangAfterMs":800,"hangOnce":true}' } });
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
    Promise.resolve(/blue \(live\) .*there is no failover: traffic came to blue by a failover from green/.test(s.serve.output()) || undefined),
  );
  const status = await s.status();
  assert.equal(status.enabled, 'blue');
  assert.equal((await new Journal(s.setup.app.paths.journal).records()).filter((r) => r.kind === 'failover').length, 1);
});
