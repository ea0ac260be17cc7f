import assert from 'node:assert/strict';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { getPublic } from '../support/duet.js';
import type { GitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import {
  appRepoInMachine,
  bootedMachine,
  branchPush,
  duetStatus,
  finalStates,
  healthz,
  installWithSecrets,
  journal,
  liveAt,
  postWebhook,
  stepsOf,
  type AppOnMachine,
} from './apps.js';
import { test, type Container } from './container.js';

/**
 * `runner: systemd` on a booted Debian 12: each color a unit of the duet user's own systemd, the
 * manager the real one that lingering starts (user@<uid>.service of the machine's PID 1), not one
 * started by hand in a private namespace as in the unit tests. A machine of its own, since the
 * runner is set for the whole of duet.yml.
 *
 * Its one app uses switch: socket, so duet.service gets the strict sandbox (NoNewPrivileges=yes,
 * an empty CapabilityBoundingSet=, ProtectSystem=strict, no sudo): this machine also checks that
 * duet serve starts and deploys under it, and that the kernel enforces it.
 */

const GITHUB_TOKEN = 'ghp_servertestservertestservertest0000';
/**
 * Run by every deploy's build (see configYaml): what the process that builds may do, written to the
 * state dir, one file per run. A deploy through duet serve builds in a child of duet serve, so in
 * duet.service's sandbox; a deploy from the CLI builds outside it: the control.
 */
const PROBE = '/usr/local/bin/duet-sandbox-probe';
const PROBE_DIR = '/var/lib/duet/sandbox-probe';
const PROBE_SCRIPT = [
  '#!/bin/sh',
  "# The server suite's sandbox probe (test/server/systemd-runner.test.ts); never fails the build.",
  `mkdir -p ${PROBE_DIR} || exit 0`,
  '{',
  '  echo "cgroup $(grep \'^0::\' /proc/self/cgroup)"',
  "  grep -E '^(NoNewPrivs|CapEff|CapBnd):' /proc/self/status",
  '  answer=$(sudo -n true 2>&1)',
  '  echo "sudo exit $? $answer"',
  `} > ${PROBE_DIR}/$$.txt 2>&1`,
  'exit 0',
  '',
].join('\n');

test('runner: systemd: the user manager started by lingering runs the colors, restarts a crash and comes back after a reboot; duet.service runs in the strict sandbox', async (t) => {
  const { github, machine } = await bootedMachine(t);
  const app = await appRepoInMachine(t, machine, 'sysapp', 'socket');
  const servePort = await freePort();

  const step = stepsOf(t);

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
  let webhookSecret = '';

  await step('duet install with runner: systemd turns lingering on: the duet user gets its systemd from PID 1', async (st) => {
    await writeFile(join(machine.root, PROBE), PROBE_SCRIPT);
    await chmod(join(machine.root, PROBE), 0o755);
    webhookSecret = await installWithSecrets(machine, configYaml(app, servePort, github), GITHUB_TOKEN);
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
  });

  await step('socket-only: duet.service gets the strict sandbox, starts under it, and duet doctor is green', async (st) => {
    const unit = await machine.run(['cat', '/etc/systemd/system/duet.service']);
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'CapabilityBoundingSet=']) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'), `duet.service lacks ${line}`);
    }
    assert.doesNotMatch(unit, /^ProtectSystem=full$/m);
    assert.equal(await machine.exec(['test', '-e', '/etc/sudoers.d/duet']).then((r) => r.code), 1, 'a socket-only setup got a sudoers file');
    const started = Date.now();
    await machine.run(['systemctl', 'start', 'duet-bootup.service', 'duet.service']);
    const up = await pollUntil(async () => ((await healthz(servePort)) ? Date.now() - started : undefined), {
      timeoutMs: 30_000,
      initialIntervalMs: 10,
      maxIntervalMs: 100,
    });
    assert.ok(up !== undefined, `duet serve did not answer in the strict sandbox:\n${await journal(machine, 'duet')}`);
    st.diagnostic(`systemctl start to /healthz answering: ${up} ms`);
    assert.equal(await machine.run(['systemctl', 'is-active', 'duet.service']), 'active');
    const doctor = await machine.exec(['duet', 'doctor']);
    st.diagnostic(`duet doctor:\n${doctor.stdout}`);
    assert.equal(doctor.code, 0, `duet doctor is not green:\n${doctor.stdout}\n${doctor.stderr}`);
    assert.doesNotMatch(doctor.stdout, /✗/);
    assert.match(doctor.stdout, /✓ user systemd: duet's systemd is (running|degraded)/);
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

  await step('a signed push webhook deploys through duet serve in its strict sandbox: systemctl --user from inside it, statuses success', async (st) => {
    const started = Date.now();
    const sha = await app.repo.commit({ VERSION: `${app.name}-v3\n` }, 'v3', { push: false });
    await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
    const response = await postWebhook(servePort, webhookSecret, 'push', branchPush(`duet-tests/${app.name}`, 'main', sha));
    assert.equal(response.status, 202, `webhook answered ${response.status}: ${await response.text()}`);
    const states = await finalStates(github, machine, app.name, sha);
    assert.equal(states.at(-1), 'success', `statuses ${states.join(', ')}\n${await journal(machine, 'duet')}`);
    const { live } = await liveAt(machine, app, sha);
    assert.notEqual(live, deployed.live, 'the webhook deploy did not switch colors');
    assert.equal((await unitState(live)).active, 'active', `${unitOf(live)} is not active`);
    Object.assign(deployed, { live, standby: deployed.live, sha });
    st.diagnostic(`push to success status ${Date.now() - started} ms, live ${live} (statuses ${states.join(', ')})`);
  });

  await step('the strict sandbox holds (kernel view, its mount namespace as its uid, the webhook build): read-only system, no privileges', async (st) => {
    const props = await machine.run(['systemctl', 'show', '--property=NoNewPrivileges,ProtectSystem,CapabilityBoundingSet,MainPID', 'duet.service']);
    const prop = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(props)?.[1];
    assert.equal(prop('NoNewPrivileges'), 'yes');
    assert.equal(prop('ProtectSystem'), 'strict');
    assert.equal(prop('CapabilityBoundingSet'), '', `CapabilityBoundingSet=${prop('CapabilityBoundingSet')}`);
    const pid = Number(prop('MainPID'));
    assert.ok(pid > 0);
    // The kernel's view of the process systemd started.
    const status = await machine.run(['cat', `/proc/${pid}/status`]);
    const field = (key: string) => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(status)?.[1]?.trim();
    const [uid, gid] = [/^Uid:\s+(\d+)/m.exec(status)![1]!, /^Gid:\s+(\d+)/m.exec(status)![1]!];
    assert.match(status, /^Uid:\s+(\d+)\s+\1\s+\1\s+\1$/m);
    assert.notEqual(uid, '0', 'duet serve runs as root');
    st.diagnostic(
      `duet serve pid ${pid} uid ${uid}: NoNewPrivs ${field('NoNewPrivs')}, CapEff ${field('CapEff')}, CapPrm ${field('CapPrm')}, CapBnd ${field('CapBnd')}, CapAmb ${field('CapAmb')}`,
    );
    assert.equal(field('NoNewPrivs'), '1');
    for (const key of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(field(key), '0000000000000000', `${key}: ${field(key)}`);

    // As the service user, in the service's own mount namespace: what duet serve and its builds see.
    const inside = (script: string) => machine.exec(['nsenter', '-t', String(pid), '-m', '-S', uid, '-G', gid, '--', 'sh', '-c', script]);
    // /var/log and /opt are what strict adds to full (which covers /usr, /boot and /etc only).
    for (const path of ['/etc/duet-escape', '/usr/duet-escape', '/usr/local/bin/duet-escape', '/var/log/duet-escape', '/opt/duet/duet-escape']) {
      const attempt = await inside(`touch ${path}`);
      assert.notEqual(attempt.code, 0, `the service could write ${path}`);
      assert.match(attempt.stderr, /Read-only file system/, `${path}: ${attempt.stderr}`);
    }
    // The control: outside the sandbox, root writes there; so Read-only above is the sandbox's doing.
    const probes = ['/etc/duet-escape', '/usr/duet-escape', '/usr/local/bin/duet-escape', '/var/log/duet-escape', '/opt/duet/duet-escape'].join(' ');
    await machine.sh(`touch ${probes} && rm ${probes}`);
    assert.equal((await inside('touch /var/lib/duet/sandbox-write && rm /var/lib/duet/sandbox-write')).code, 0, 'the state dir is writable');
    assert.equal((await inside('touch /etc/duet/nginx.d/sandbox-write && rm /etc/duet/nginx.d/sandbox-write')).code, 0, 'the nginx include dir is writable');

    // A real child of duet serve: the webhook deploy's build ran the probe. nsenter cannot stand in
    // for it here: no_new_privs is inherited only by descendants, so sudo in an nsenter shell fails
    // for want of a password, not for the sandbox.
    const runs = await probeRuns(machine);
    const serveRuns = runs.filter((run) => /^cgroup 0::\/system\.slice\/duet\.service$/m.test(run));
    const cliRuns = runs.filter((run) => !serveRuns.includes(run));
    assert.equal(serveRuns.length, 1, `the probe runs:\n${runs.join('\n---\n')}`);
    const inService = serveRuns[0]!;
    st.diagnostic(`the webhook build's probe (a child of duet serve):\n${inService}`);
    assert.match(inService, /^NoNewPrivs:\s+1$/m);
    assert.match(inService, /^CapEff:\s+0000000000000000$/m);
    assert.match(inService, /^CapBnd:\s+0000000000000000$/m);
    const sudo = /^sudo exit (\d+) (.*)$/m.exec(inService);
    assert.ok(sudo, inService);
    assert.notEqual(sudo[1], '0', 'sudo -n true succeeded in the sandbox');
    assert.match(sudo[2]!, /"no new privileges" flag is set/, `sudo -n true: ${sudo[2]}`);
    // The control: the CLI deploys' builds, outside the sandbox, as the same user.
    assert.equal(cliRuns.length, 2, `the probe runs:\n${runs.join('\n---\n')}`);
    st.diagnostic(`a CLI deploy's probe (sudo -u duet, no sandbox):\n${cliRuns[0]}`);
    for (const run of cliRuns) {
      assert.match(run, /^NoNewPrivs:\s+0$/m);
      assert.doesNotMatch(run, /^CapBnd:\s+0000000000000000$/m);
      assert.doesNotMatch(run, /no new privileges/);
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

/** The sandbox probe's reports, one per build that ran it. */
async function probeRuns(machine: Container): Promise<string[]> {
  const dir = join(machine.root, PROBE_DIR);
  const files = (await readdir(dir)).sort();
  return Promise.all(files.map(async (file) => (await readFile(join(dir, file), 'utf8')).trim()));
}

function configYaml(app: AppOnMachine, servePort: number, github: GitHubServer): string {
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
    'github:',
    `  api_url: http://127.0.0.1:${github.port}`,
    'apps:',
    `  ${app.name}:`,
    `    repo: duet-tests/${app.name}`,
    `    clone_url: file://${app.bareInMachine}`,
    `    listen: "127.0.0.1:${app.listen}"`,
    `    server_name: ${app.name}.test`,
    '    switch: socket',
    '    install: npm ci --no-audit --no-fund',
    `    build: npm run build --if-present && ${PROBE}`,
    '    start: exec node server.js',
    '    health: { path: /health, timeout_s: 30, watch_s: 1 }',
    '    standby: keep',
    '    drain_s: 0.5',
    '',
  ].join('\n');
}
