import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { appUnitName, instanceEnvPath } from '../../src/instance/systemd-unit.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { startServe, type ServeProcess } from '../support/serve.js';
import { startUserSystemd } from '../support/user-systemd.js';

/**
 * runner: systemd against a real systemd user manager: every start, stop and pid goes through
 * `systemctl --user`, and systemd -- not duet -- brings back a color that crashed.
 */
const systemdApp = { env: `{ PATH: ${JSON.stringify(process.env.PATH ?? '/usr/bin:/bin')} }` };

test('runner: systemd: deploy, crash and restart by systemd, rollback and stop, all through systemctl --user', async (t) => {
  const systemd = await startUserSystemd(t);
  if (!systemd) return;
  const setup = await setupDuet(t, { top: { runner: 'systemd' }, app: systemdApp });
  const { succeed, duet, get, app } = setup;
  await systemd.installAppUnit(setup.config.stateDir);
  const env = systemd.env;
  const mainPid = async (color: 'blue' | 'green'): Promise<string> =>
    (await systemd.systemctl(['show', '--property=MainPID', '--value', appUnitName(app.name, color)])).trim();

  await succeed(['deploy', '--ref', 'v1'], env);
  assert.match((await get('/')).body, /cafeteria v1/);
  assert.equal((await duet(['pid', 'blue'], env)).stdout, `${await mainPid('blue')}\n`, 'duet reads the pid from systemd');
  assert.equal((await stat(instanceEnvPath(app, 'blue'))).mode & 0o777, 0o600, "the env file is the service user's only");

  await succeed(['deploy', '--ref', 'v2'], env);
  assert.match((await get('/')).body, /cafeteria v2/);
  assert.equal(await systemd.systemctl(['is-active', appUnitName(app.name, 'blue')]).catch(() => 'inactive'), 'active', 'blue stays warm');

  // A crash: systemd restarts green (Restart=on-failure), and duet follows the new pid.
  const crashed = Number(await mainPid('green'));
  process.kill(crashed, 'SIGKILL');
  const restarted = await pollUntil(
    async () => {
      const pid = Number(await mainPid('green'));
      if (pid === 0 || pid === crashed) return undefined;
      return (await get('/').catch(() => undefined))?.body.includes('cafeteria v2') ? pid : undefined;
    },
    { timeoutMs: 15_000, maxIntervalMs: 100 },
  );
  assert.ok(restarted, 'systemd brought green back');
  assert.equal((await duet(['pid', 'green'], env)).stdout, `${restarted}\n`);
  const status = JSON.parse((await succeed(['status', '--json'], env)).stdout);
  assert.equal(status.colors.green.running, true);
  assert.equal(status.colors.green.pid, restarted);
  assert.equal(status.colors.green.revision, await setup.repo.revParse('v2^{commit}'), 'the revision duet recorded survives the restart');

  await succeed(['rollback'], env);
  assert.match((await get('/')).body, /cafeteria v1/);
  assert.equal((await succeed(['stop-instance', 'green'], env)).stdout, 'stopped\n');
  assert.equal(await systemd.systemctl(['is-active', appUnitName(app.name, 'green')]).catch(() => 'inactive'), 'inactive');
  assert.equal((await duet(['pid', 'green'], env)).code, 1);

  // doctor asks the same systemd, and says what to do when it does not answer.
  const line = async (runtimeDir: string) => {
    const report = JSON.parse((await duet(['doctor', '--json'], { XDG_RUNTIME_DIR: runtimeDir })).stdout) as Array<{
      name: string;
      ok: boolean;
      detail: string;
      fix: string;
    }>;
    return report.find((r) => r.name === 'user systemd');
  };
  assert.equal((await line(env.XDG_RUNTIME_DIR!))?.ok, true);
  const down = await line(setup.dir);
  assert.equal(down?.ok, false);
  assert.match(down.fix, /loginctl enable-linger/);
});

test('runner: systemd: a color that crashes on start fails the deploy and is stopped, not left restarting', async (t) => {
  const systemd = await startUserSystemd(t);
  if (!systemd) return;
  const setup = await setupDuet(t, {
    top: { runner: 'systemd' },
    app: systemdApp,
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashOnStart":true}' } },
  });
  await systemd.installAppUnit(setup.config.stateDir);
  await setup.succeed(['deploy', '--ref', 'v1'], systemd.env);

  const failed = await setup.duet(['deploy', '--ref', 'v2'], systemd.env);
  assert.equal(failed.code, 1, failed.stderr);
  // Seen at start (gone before duet looked at its pid) or at health (gone while duet probed it).
  assert.match(failed.stderr, /(start: green exited immediately after start|health: green exited before it became healthy)/);
  assert.match(failed.stderr, /journalctl --user -u 'duet-app@cafeteria-green\.service'/, 'the operator is told where its output is');
  const state = await systemd.systemctl(['show', '--property=ActiveState', '--value', appUnitName('cafeteria', 'green')]);
  assert.equal(state.trim(), 'inactive', 'stopped, so systemd does not keep restarting it');
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'live traffic never moved');
});

test('runner: systemd: a version that crashes after going live is switched back and its unit stopped, not left restarting', async (t) => {
  const systemd = await startUserSystemd(t);
  if (!systemd) return;
  const setup = await setupDuet(t, {
    top: { runner: 'systemd' },
    app: { ...systemdApp, health: '{ path: /health, timeout_s: 10, watch_s: 4 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterMs":800,"crashExitCode":5}' } },
  });
  await systemd.installAppUnit(setup.config.stateDir);
  await setup.succeed(['deploy', '--ref', 'v1'], systemd.env);
  const failed = await setup.duet(['deploy', '--ref', 'v2'], systemd.env);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /watch: green exited with code 5 \d\.\d s after going live; switched back to blue/);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  assert.equal(await systemd.systemctl(['is-active', appUnitName(setup.app.name, 'green')]).catch(() => 'inactive'), 'inactive');
});

test('runner: systemd under duet serve: systemd restarts a crashing live color, duet counts it and fails over a crash loop', async (t) => {
  const systemd = await startUserSystemd(t);
  if (!systemd) return;
  let serve: ServeProcess | undefined;
  t.after(async () => serve?.crash());
  const port = await freePort();
  const setup = await setupDuet(t, {
    switchMode: 'socket',
    top: { runner: 'systemd', server: `{ listen: "127.0.0.1:${port}" }` },
    app: systemdApp,
    // v2 passes its deploy's short watch, then crashes 1.5 s after each start.
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterMs":1500}' } },
  });
  await systemd.installAppUnit(setup.config.stateDir);
  await setup.succeed(['deploy', '--ref', 'v1'], systemd.env);
  await setup.succeed(['deploy', '--ref', 'v2'], systemd.env);
  serve = await startServe(t, setup.configPath, port, systemd.env);
  const status = await pollUntil(
    async () => {
      const now = JSON.parse((await setup.succeed(['status', '--json'], systemd.env)).stdout);
      return now.enabled === 'blue' && now.lastFailover ? now : undefined;
    },
    { timeoutMs: 40_000, maxIntervalMs: 200 },
  );
  assert.ok(status, `failed over from the crash loop:\n${serve.output()}`);
  assert.match(status.lastFailover.reason, /green exited 3 times within 60 s/, serve.output());
  assert.ok(status.colors.green.restarts >= 2, `systemd's restarts were counted: ${JSON.stringify(status.colors.green)}`);
  assert.doesNotMatch(serve.output(), /restarted green/, 'duet left the restarts to systemd');
  assert.match((await setup.get('/')).body, /cafeteria v1/);
});

test("runner: systemd: duet pid is the app's own process, not the unit's shell that started it", async (t) => {
  const systemd = await startUserSystemd(t);
  if (!systemd) return;
  // No exec: the unit's main process stays the shell, the app is its child.
  const setup = await setupDuet(t, { top: { runner: 'systemd' }, app: { ...systemdApp, start: "'node server.js; echo the app ended'" } });
  await systemd.installAppUnit(setup.config.stateDir);
  await setup.succeed(['deploy', '--ref', 'v1'], systemd.env);
  const main = Number((await systemd.systemctl(['show', '--property=MainPID', '--value', appUnitName(setup.app.name, 'blue')])).trim());
  const pid = Number((await setup.succeed(['pid', 'blue'], systemd.env)).stdout.trim());
  assert.notEqual(pid, main, 'the shell systemd started');
  assert.match(await readFile(`/proc/${pid}/cmdline`, 'utf8'), /^node\0server\.js\0$/);
  assert.equal(Number((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[1]), main, 'a child of the unit main process');
});
