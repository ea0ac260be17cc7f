import { test } from '../support/test.js';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pollUntil } from '../../src/util/poll.js';
import { appSocketUnitName, appUnitName } from '../../src/instance/systemd-unit.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { journalRuns } from '../support/journal.js';
import { startLoad } from '../support/load.js';
import { freePort } from '../support/ports.js';
import { startServe } from '../support/serve.js';
import { tempDir } from '../support/tmp.js';
import { startUserSystemd, type UserSystemd } from '../support/user-systemd.js';

/**
 * socket_activation under runner: systemd: each color's socket is a socket unit's, so systemd --
 * not duet serve -- holds it while the app restarts, and a restart of duet serve changes nothing
 * (issue 23: "60 requests of death in 20 s leave the standby up and the public port answering
 * every other request").
 */

interface Activated {
  setup: DuetSetup;
  systemd: UserSystemd;
  control(name: string, value: string | undefined): Promise<void>;
  mainPid(color: 'blue' | 'green'): Promise<number>;
  show(unit: string, property: string): Promise<string>;
}

/** v1 on blue, v2 on green (live), both deployed by the CLI under a real systemd user manager. */
async function activated(t: TestContext, servePort?: number): Promise<Activated | undefined> {
  const systemd = await startUserSystemd(t);
  if (!systemd) return undefined;
  const controlDir = await tempDir(t, 'duet-control');
  const setup = await setupDuet(t, {
    switchMode: 'socket',
    top: { runner: 'systemd', ...(servePort === undefined ? {} : { server: `{ listen: "127.0.0.1:${servePort}" }` }) },
    app: { socket_activation: 'true', env: `{ PATH: ${JSON.stringify(process.env.PATH ?? '/usr/bin:/bin')}, CONTROL_DIR: "${controlDir}" }` },
  });
  await systemd.installAppUnit(setup.config.stateDir, setup.app);
  await setup.succeed(['deploy', '--ref', 'v1'], systemd.env);
  await setup.succeed(['deploy', '--ref', 'v2'], systemd.env);
  const show = async (unit: string, property: string) => (await systemd.systemctl(['show', `--property=${property}`, '--value', unit])).trim();
  return {
    setup,
    systemd,
    show,
    mainPid: async (color) => Number(await show(appUnitName(setup.app.name, color), 'MainPID')),
    control: async (name, value) => {
      const file = join(controlDir, name);
      await (value === undefined ? rm(file, { force: true }) : writeFile(file, value));
    },
  };
}

/** Requests of death at the audit's pace (60 in 21 s); their answers, 0 for none. */
async function deaths(setup: DuetSetup, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i += 1) {
    statuses.push((await setup.get('/die').catch(() => ({ status: 0 }))).status);
    await sleep(350); // the attack's pace, not a condition to wait for
  }
  return statuses;
}

test(
  'runner: systemd + socket_activation: the socket units hold each color through requests of death and a restart of duet serve; the standby is never touched, no failover',
  { timeout: 240_000 },
  async (t) => {
    const port = await freePort();
    const a = await activated(t, port);
    if (!a) return;
    const { setup, systemd, show } = a;
    const env = systemd.env;
    for (const color of ['blue', 'green'] as const) {
      assert.equal(await show(appSocketUnitName(setup.app.name, color), 'ActiveState'), 'active', `${color}'s socket unit listens`);
      assert.equal(await show(appSocketUnitName(setup.app.name, color), 'Listen'), `${setup.app.paths.socket[color]} (Stream)`);
    }
    assert.equal((await setup.get('/env/LISTEN_FDS')).body, '1', 'the app got the socket from systemd as fd 3');
    assert.equal((await setup.get('/env/LISTEN_PID')).body, String(await a.mainPid('green')), "systemd's LISTEN_PID: the app itself (exec node)");
    assert.equal((await setup.get('/env/LISTEN_FDNAMES')).body, 'green');
    assert.equal((await stat(setup.app.paths.socket.green)).mode & 0o777, 0o666, "nginx's workers may connect");

    const standby = await a.mainPid('blue');
    const restartsBefore = Number(await show(appUnitName(setup.app.name, 'green'), 'NRestarts'));
    await a.control('die-on', '/die');
    const load = startLoad(setup.listenPort, { concurrency: 2, keepAlive: true });
    const sent: number[] = [];
    try {
      const first = await startServe(t, setup.configPath, port, env);
      sent.push(...(await deaths(setup, 10)));
      await first.crash();
      // Nobody but systemd holds the sockets now.
      sent.push(...(await deaths(setup, 10)));
      await startServe(t, setup.configPath, port, env);
      sent.push(...(await deaths(setup, 10)));
    } finally {
      await load.stop();
    }
    const report = load.report;
    const restarts = Number(await show(appUnitName(setup.app.name, 'green'), 'NRestarts')) - restartsBefore;
    t.diagnostic(`deaths ${JSON.stringify(sent)}; green restarted ${restarts} times by systemd`);
    t.diagnostic(`load: ${report.requests} requests, ${report.non2xx} non-2xx ${JSON.stringify(report.statuses)}, ${report.errors} errors`);
    assert.equal(await a.mainPid('blue'), standby, 'the standby never received a request of death');
    assert.ok(restarts >= 25, `green was killed and restarted again and again: ${restarts}`);
    assert.equal(await show(appSocketUnitName(setup.app.name, 'green'), 'ActiveState'), 'active', 'its socket never closed');
    const status = JSON.parse((await setup.succeed(['status', '--json'], env)).stdout);
    assert.equal(status.enabled, 'green', 'no failover');
    assert.equal((await journalRuns(setup.app.paths.journal)).filter((r) => r.kind === 'failover').length, 0);
    assert.equal(report.errors, 0);
    // What fails is what the dying process had accepted besides the death (the load's two loops at
    // most): never what arrived while it restarted, which waited in the socket.
    assert.ok(report.non2xx <= 2 * sent.length, `at most the requests in flight in each dying process: ${report.non2xx} of ${report.requests}`);
    assert.equal(report.non2xx, report.statuses[502] ?? 0);
    assert.match((await setup.get('/')).body, /cafeteria v2/);
  },
);

test('runner: systemd + socket_activation: stop-instance stops the socket unit too, and a start brings both back', async (t) => {
  const a = await activated(t);
  if (!a) return;
  const { setup, systemd, show } = a;
  const socket = appSocketUnitName(setup.app.name, 'blue');
  assert.equal((await setup.succeed(['stop-instance', 'blue'], systemd.env)).stdout, 'stopped\n');
  assert.equal(await show(socket, 'ActiveState'), 'inactive', 'a connection would start the service again');
  assert.equal(await show(appUnitName(setup.app.name, 'blue'), 'ActiveState'), 'inactive');
  await assert.rejects(stat(setup.app.paths.socket.blue), 'the socket file is gone with it');
  await setup.succeed(['start-instance', 'blue'], systemd.env);
  assert.equal(await show(socket, 'ActiveState'), 'active');
  assert.equal(await show(appUnitName(setup.app.name, 'blue'), 'ActiveState'), 'active');
});

test('runner: systemd + socket_activation: a live color that cannot start again is failed over when it has not answered for 10 s', async (t) => {
  const port = await freePort();
  const a = await activated(t, port);
  if (!a) return;
  const { setup, systemd, show } = a;
  const serve = await startServe(t, setup.configPath, port, systemd.env);
  await a.control('crash-on-start.green', '1');
  const load = startLoad(setup.listenPort, { concurrency: 2, keepAlive: true });
  const killed = Date.now();
  let status;
  try {
    process.kill(await a.mainPid('green'), 'SIGKILL');
    // duet status waits on green's socket too (its health probe queues there): polled slowly.
    status = await pollUntil(
      async () => {
        const now = JSON.parse((await setup.succeed(['status', '--json'], systemd.env)).stdout);
        return now.lastFailover?.to === 'blue' ? now : undefined;
      },
      { timeoutMs: 60_000, maxIntervalMs: 200 },
    );
  } finally {
    await load.stop();
  }
  const report = load.report;
  assert.ok(status, `failed over to blue:\n${serve.output()}`);
  const after = Date.parse(status.lastFailover.at) - killed;
  t.diagnostic(
    `failover ${after} ms after the kill: ${status.lastFailover.reason}; green's socket unit ${await show(appSocketUnitName(setup.app.name, 'green'), 'ActiveState')}`,
  );
  t.diagnostic(`load: ${report.requests} requests, ${report.non2xx} non-2xx ${JSON.stringify(report.statuses)}, ${report.errors} errors`);
  assert.match(status.lastFailover.reason, /^green has not answered for 1\d s/);
  assert.ok(after < 25_000, `failed over ${after} ms after the kill`);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  assert.equal(report.errors, 0);
  // No start limit stops green's restarts (they must never fail its socket unit): duet serve
  // stops both of its units once traffic left it, and keeps its record (down, not stopped).
  const service = appUnitName(setup.app.name, 'green');
  // inactive, or failed when the stop found a start crashing (its exit code is the unit's result):
  // either way no restart follows.
  const stopped = await pollUntil(async () => (['inactive', 'failed'].includes(await show(service, 'ActiveState')) ? true : undefined), { timeoutMs: 5000 });
  assert.ok(stopped, `green's service is ${await show(service, 'ActiveState')}/${await show(service, 'SubState')}`);
  assert.equal(await show(appSocketUnitName(setup.app.name, 'green'), 'ActiveState'), 'inactive');
  assert.equal(await show(appSocketUnitName(setup.app.name, 'green'), 'Result'), 'success', 'its socket unit never failed');
  await stat(setup.app.paths.pidfile.green);
});

/**
 * Requests of death back to back, from three loops: each process dies on the first request it
 * reads, so the pace is systemd's restart itself. Returns green's restarts and the time taken.
 */
async function deathsBackToBack(a: Activated, service: string): Promise<{ restarts: number; elapsed: number; statuses: Record<number, number> }> {
  const restartsBefore = Number(await a.show(service, 'NRestarts'));
  const started = Date.now();
  let restarts = 0;
  let elapsed = 0;
  let stop = false;
  const statuses: Record<number, number> = {};
  const loop = async () => {
    while (!stop) {
      const status = (await a.setup.get('/die').catch(() => ({ status: 0 }))).status;
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  const count = async () => {
    while (!stop) {
      restarts = Number(await a.show(service, 'NRestarts')) - restartsBefore;
      elapsed = Date.now() - started;
      if (restarts >= 80 || elapsed >= 20_000) stop = true;
    }
  };
  await Promise.all([loop(), loop(), loop(), count()]);
  return { restarts, elapsed, statuses };
}

for (const exitCode of [1, 0]) {
  test(
    `runner: systemd + socket_activation: requests of death (exit ${exitCode}) faster than any start or trigger limit never fail the live socket unit, never reach the standby, and the live color serves afterwards`,
    { timeout: 180_000 },
    async (t) => {
      const a = await activated(t);
      if (!a) return;
      const { setup, show } = a;
      const service = appUnitName(setup.app.name, 'green');
      const socket = appSocketUnitName(setup.app.name, 'green');
      const standby = await a.mainPid('blue');
      await a.control('die-on', '/die');
      await a.control('die-exit-code', String(exitCode));
      const { restarts, elapsed, statuses } = await deathsBackToBack(a, service);
      t.diagnostic(`${restarts} restarts of green in ${elapsed} ms; answers ${JSON.stringify(statuses)}`);
      // A clean exit is restarted too (Restart=always): else the socket unit starts each next
      // process itself, at once, and fails with trigger-limit-hit.
      assert.equal(await show(socket, 'Result'), 'success', 'the socket unit never failed');
      assert.equal(await show(socket, 'ActiveState'), 'active');
      assert.equal(await a.mainPid('blue'), standby, 'the standby never received a request of death');
      assert.ok(
        restarts > 60 && elapsed <= 20_500,
        `each death restarted by systemd (a clean exit too), more than 60 in 20 s (a start limit's burst): ${restarts} in ${elapsed} ms`,
      );
      await a.control('die-on', undefined);
      const back = await pollUntil(
        async () => {
          const answer = await setup.get('/').catch(() => undefined);
          return answer?.status === 200 ? answer : undefined;
        },
        { timeoutMs: 10_000 },
      );
      assert.match(back?.body ?? '', /cafeteria v2/, 'the live color serves again');
      assert.equal(await a.mainPid('blue'), standby);
    },
  );
}
