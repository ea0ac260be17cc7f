import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pollUntil } from '../../src/util/poll.js';
import { getPublic } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { appRepoInMachine, duetStatus, journal, type AppOnMachine } from './apps.js';
import { startContainer } from './container.js';
import { installRelease } from './release.js';

/**
 * `runner: systemd` on a booted Debian 12: each color a unit of the duet user's own systemd, the
 * manager the real one that lingering starts (user@<uid>.service of the machine's PID 1), not one
 * started by hand in a private namespace as in the unit tests. A machine of its own, since the
 * runner is set for the whole of duet.yml.
 */

test('runner: systemd: the user manager started by lingering runs the colors, restarts a crash and comes back after a reboot', async (t) => {
  const machine = await startContainer(t);
  const boot = await machine.boot();
  t.diagnostic(`boot: ${boot.ms} ms (${boot.state})`);
  assert.deepEqual(boot.failed, []);
  const app = await appRepoInMachine(t, machine, 'sysapp', 'socket');
  const servePort = await freePort();

  let broken = false;
  const step = async (name: string, fn: (t: TestContext) => Promise<void>): Promise<void> => {
    await t.test(name, { skip: broken ? 'a step before failed' : false }, async (st) => {
      try {
        await fn(st);
      } catch (error) {
        broken = true;
        throw error;
      }
    });
  };

  let uid = '';
  const userctl = (args: string[]) => machine.exec(['sudo', '-u', 'duet', 'env', `XDG_RUNTIME_DIR=/run/user/${uid}`, 'systemctl', '--user', ...args]);
  const unitOf = (color: string) => `duet-app@${app.name}-${color}.service`;
  const unitState = async (color: string) => {
    const out = await userctl(['show', '--property=ActiveState,MainPID,NRestarts', unitOf(color)]);
    const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out.stdout)?.[1] ?? '';
    return { active: value('ActiveState'), pid: Number(value('MainPID')), restarts: Number(value('NRestarts')) };
  };
  const appJournal = async (color: string) =>
    (await machine.exec(['journalctl', `_SYSTEMD_USER_UNIT=${unitOf(color)}`, '--no-pager', '-o', 'cat', '-n', '30'])).stdout;
  const deployed = { live: '', standby: '', sha: '' };

  await step('duet install with runner: systemd turns lingering on: the duet user gets its systemd from PID 1', async (st) => {
    await installRelease(machine);
    await mkdir(join(machine.root, 'etc', 'duet'), { recursive: true });
    await writeFile(join(machine.root, 'etc', 'duet', 'duet.yml'), configYaml(app, servePort));
    await machine.run(['duet', 'install']);
    await machine.sh('umask 077; openssl rand -hex 32 > /etc/duet/credentials/webhook-secret');
    await machine.run(['duet', 'install']);
    uid = (await machine.run(['id', '-u', 'duet'])).trim();
    assert.equal(await machine.run(['test', '-e', '/etc/systemd/user/duet-app@.service']).then(() => 'ok'), 'ok');
    assert.equal(await machine.run(['loginctl', 'show-user', 'duet', '--property=Linger', '--value']), 'yes');
    const started = Date.now();
    const running = await pollUntil(
      async () => {
        const state = (await userctl(['show', '--property=SystemState', '--value'])).stdout.trim();
        return state === 'running' || state === 'degraded' ? state : undefined;
      },
      { timeoutMs: 30_000, initialIntervalMs: 20, maxIntervalMs: 200 },
    );
    assert.ok(running, `the duet user's systemd is not up:\n${(await machine.exec(['systemctl', 'status', `user@${uid}.service`, '--no-pager'])).stdout}`);
    assert.equal(await machine.run(['systemctl', 'is-active', `user@${uid}.service`]), 'active');
    st.diagnostic(`user@${uid}.service ${running} (${Date.now() - started} ms after the install)`);
    const doctor = await machine.exec(['duet', 'doctor']);
    st.diagnostic(`duet doctor:\n${doctor.stdout}`);
    assert.match(doctor.stdout, /✓ user systemd: duet's systemd is (running|degraded)/);
    await machine.run(['systemctl', 'start', 'duet-bootup.service', 'duet.service']);
  });

  await step('deploys run each color as a unit of the user manager (sudo -u duet duet deploy, as README step 7)', async (st) => {
    for (const round of [1, 2]) {
      const started = Date.now();
      const sha = round === 1 ? app.repo.initialSha : await app.repo.commit({ VERSION: `${app.name}-v2\n` }, 'v2', { push: false });
      await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
      const deploy = await machine.exec(['sudo', '-u', 'duet', 'duet', 'deploy', app.name, '--ref', 'main'], { timeoutMs: 180_000 });
      assert.equal(deploy.code, 0, `deploy round ${round}:\n${deploy.stdout}\n${deploy.stderr}`);
      const status = await duetStatus(machine, app.name);
      const live = status.enabled as string;
      assert.equal(status.colors[live].revision, sha);
      const unit = await unitState(live);
      assert.equal(unit.active, 'active', `${unitOf(live)}: ${JSON.stringify(unit)}`);
      // The process that serves is the unit's, in the user manager's cgroup.
      const pid = Number((await machine.run(['sudo', '-u', 'duet', 'duet', 'pid', app.name, live])).trim());
      const cgroup = await machine.run(['cat', `/proc/${pid}/cgroup`]);
      assert.match(
        cgroup,
        new RegExp(`^0::/user\\.slice/user-${uid}\\.slice/user@${uid}\\.service/app\\.slice/.*/duet-app@${app.name}-${live}\\.service$`, 'm'),
        cgroup,
      );
      const answer = await getPublic(app.listen);
      assert.equal(answer.status, 200);
      assert.match(answer.body, new RegExp(`color ${live} revision ${sha}`));
      if (round === 2) {
        const standby = live === 'blue' ? 'green' : 'blue';
        assert.equal((await unitState(standby)).active, 'active', `the standby ${unitOf(standby)} is not running`);
        Object.assign(deployed, { live, standby, sha });
      }
      st.diagnostic(`round ${round}: live ${live} (${unitOf(live)}, pid ${pid}) in ${Date.now() - started} ms`);
    }
  });

  await step('kill -9 of the live color: its user unit is restarted by systemd, duet pid follows, the public port serves again', async (st) => {
    const before = await unitState(deployed.live);
    const pid = Number((await machine.run(['sudo', '-u', 'duet', 'duet', 'pid', app.name, deployed.live])).trim());
    // kill is the shell's builtin: minbase has no procps.
    await machine.sh(`kill -9 ${pid}`);
    const killed = Date.now();
    const back = await pollUntil(
      async () => {
        const answer = await getPublic(app.listen).catch(() => undefined);
        if (answer?.status !== 200 || !answer.body.includes(`color ${deployed.live} revision ${deployed.sha}`)) return undefined;
        const now = await unitState(deployed.live);
        return now.active === 'active' && now.pid !== before.pid ? { ms: Date.now() - killed, now } : undefined;
      },
      { timeoutMs: 30_000, initialIntervalMs: 20, maxIntervalMs: 100 },
    );
    assert.ok(back, `${unitOf(deployed.live)} did not come back:\n${await appJournal(deployed.live)}`);
    st.diagnostic(
      `kill -9 to serving again: ${back.ms} ms (RestartSec=1s); pid ${before.pid} -> ${back.now.pid}, NRestarts ${before.restarts} -> ${back.now.restarts}`,
    );
    assert.equal(back.now.restarts, before.restarts + 1);
    const reported = Number((await machine.run(['sudo', '-u', 'duet', 'duet', 'pid', app.name, deployed.live])).trim());
    const children = await machine.run(['sh', '-c', `cat /proc/${back.now.pid}/task/*/children; echo`]);
    assert.ok(reported === back.now.pid || children.split(/\s+/).includes(String(reported)), `duet pid says ${reported}, the unit runs ${back.now.pid}`);
    assert.equal((await duetStatus(machine, app.name)).enabled, deployed.live);
  });

  await step('a reboot: lingering starts the user manager at boot, duet-bootup brings the live color back, standby warm', async (st) => {
    const off = await machine.poweroff();
    const again = await machine.boot();
    st.diagnostic(`poweroff ${off} ms; boot to ${again.state} ${again.ms} ms`);
    assert.deepEqual(again.failed, []);
    const started = Date.now() - again.ms;
    const serving = await pollUntil(
      async () => {
        const answer = await getPublic(app.listen).catch(() => undefined);
        return answer?.status === 200 && answer.body.includes(`color ${deployed.live} revision ${deployed.sha}`) ? Date.now() - started : undefined;
      },
      { timeoutMs: 120_000, initialIntervalMs: 20, maxIntervalMs: 100 },
    );
    assert.ok(serving !== undefined, `not serving after the reboot:\n${await journal(machine, 'duet-bootup')}`);
    st.diagnostic(`reboot to serving the live color: ${serving} ms from starting systemd-nspawn`);
    assert.equal((await unitState(deployed.live)).active, 'active');
    assert.equal((await unitState(deployed.standby)).active, 'active', 'the standby is not warm after the reboot');
    assert.equal(await machine.run(['systemctl', 'is-active', `user@${uid}.service`, 'duet-bootup.service', 'duet.service']), 'active\nactive\nactive');
  });
});

function configYaml(app: AppOnMachine, servePort: number): string {
  return [
    '# duet.yml of the server suite (test/server/systemd-runner.test.ts)',
    'state_dir: /var/lib/duet',
    'user: duet',
    'runner: systemd',
    'nginx:',
    '  managed: false',
    '  conf_dir: /etc/duet/nginx.d',
    'server:',
    `  listen: 127.0.0.1:${servePort}`,
    `  public_url: http://127.0.0.1:${servePort}`,
    'apps:',
    `  ${app.name}:`,
    `    repo: duet-tests/${app.name}`,
    `    clone_url: file://${app.bareInMachine}`,
    `    listen: "127.0.0.1:${app.listen}"`,
    `    server_name: ${app.name}.test`,
    '    switch: socket',
    '    install: npm ci --no-audit --no-fund',
    '    build: npm run build --if-present',
    '    start: exec node server.js',
    '    health: { path: /health, timeout_s: 30, watch_s: 1 }',
    '    standby: keep',
    '    drain_s: 0.5',
    '',
  ].join('\n');
}
