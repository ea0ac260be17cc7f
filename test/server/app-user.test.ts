import assert from 'node:assert/strict';
import { chmod, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { getPublic } from '../support/duet.js';
import type { GitHubServer } from '../support/github-server.js';
import { startLoad } from '../support/load.js';
import { freePort } from '../support/ports.js';
import { test } from './container.js';
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

/**
 * `app_user`: the apps run as another user than duet, as system units of the machine's PID 1,
 * which duet starts and stops through the polkit rule duet install writes. What this buys is
 * checked from inside the app itself: its install (a postinstall script), its build and every
 * start of a color run a probe, as the app's own process in its own unit, that tries to read what
 * it must not (duet's credentials, duet serve's environment, the unit's env file) and reports
 * what it could. Controls show that each
 * of those is there and readable by duet's uid, so "denied" is the separation, not a wrong path.
 */

const APP_USER = 'duet-app';
const GITHUB_TOKEN = 'ghp_appusertestappusertestappuser0000';
const PROBE = '/usr/local/bin/duet-app-probe';
/** The app user's home, the one place of its own it may write (duet install makes it 0700). */
const PROBE_DIR = `/var/lib/${APP_USER}`;
/** build_limits.memory_max of this machine, in MiB; the hog allocates up to 4 times as much. */
const HOG_LIMIT_MB = 256;
/**
 * A build that allocates past memory_max, 16 MiB at a time, touched so that it is resident. It
 * stops at 4 x the limit and exits 0 when nothing killed it: a machine where the slice's limit is
 * not in force fails the step instead of having its memory eaten.
 */
const HOG = [
  'const chunks = [];',
  `for (let mb = 0; mb < ${4 * HOG_LIMIT_MB}; mb += 16) chunks.push(Buffer.alloc(16 * 1024 * 1024, 1));`,
  "console.log('hog: allocated', chunks.length * 16, 'MiB and was not killed');",
  '',
].join('\n');
const PROBE_SCRIPT = [
  '#!/bin/sh',
  "# The server suite's app probe (test/server/app-user.test.ts): what the app (its install, build, start:",
  '# $1) can reach. Never fails.',
  `out=${PROBE_DIR}/probe-$1-$$.txt`,
  'serve=$(systemctl show --property=MainPID --value duet.service)',
  '{',
  '  echo "as $1 uid $(id -u) gid $(id -g)"',
  '  echo "cgroup $(grep \'^0::\' /proc/self/cgroup)"',
  `  for f in /run/credentials/duet.service/webhook-secret /run/credentials/duet.service/github-token /etc/duet/credentials/webhook-secret "/proc/$serve/environ" "$PWD.env"; do`,
  '    if cat "$f" > /dev/null 2>&1; then echo "read $f"; else echo "denied $f"; fi',
  '  done',
  '  if touch "$PWD/probe-wrote-here" 2> /dev/null; then echo "wrote the checkout"; else echo "checkout read-only"; fi',
  '  if cat "$PWD/server.js" > /dev/null 2>&1; then echo "reads the checkout"; fi',
  '  echo "secret variables: $(env | grep -c -E \'^DUET_(WEBHOOK|API|GITHUB)\')"',
  '} > "$out" 2>&1',
  'exit 0',
  '',
].join('\n');

test('app_user: the apps run as another user, started through polkit by an unprivileged duet, and cannot reach its secrets', async (t) => {
  const { github, machine } = await bootedMachine(t);
  const app = await appRepoInMachine(t, machine, 'userapp', 'socket');
  const servePort = await freePort();
  const step = stepsOf(t);
  const unitOf = (color: string) => `duet-app@${app.name}-${color}.service`;
  const mainPid = async (unit: string) => Number(await machine.run(['systemctl', 'show', '--property=MainPID', '--value', unit]));
  let webhookSecret = '';
  /** The machine's cgroup v2 has the memory controller: duet-build.slice's MemoryMax is in force. */
  let memoryLimits = false;
  let live = '';

  await step('duet install with app_user: the user, a system unit template run as it, the polkit rule; no lingering', async () => {
    await writeFile(join(machine.root, PROBE), PROBE_SCRIPT);
    await chmod(join(machine.root, PROBE), 0o755);
    webhookSecret = await installWithSecrets(machine, configYaml(app, servePort, github), GITHUB_TOKEN);
    const [duetIds, appIds] = [await machine.run(['id', 'duet']), await machine.run(['id', APP_USER])];
    assert.match(duetIds, /systemd-journal/, `duet reads the app units' journal: ${duetIds}`);
    assert.match(appIds, /gid=\d+\(duet\)/, `${APP_USER}'s group is duet's: ${appIds}`);
    assert.doesNotMatch(appIds, /systemd-journal|sudo/);
    assert.match(await machine.run(['cat', '/etc/systemd/system/duet-app@.service']), new RegExp(`^User=${APP_USER}$`, 'm'));
    assert.equal((await machine.exec(['test', '-e', '/etc/systemd/user/duet-app@.service'])).code, 1);
    assert.equal((await machine.exec(['test', '-e', '/var/lib/systemd/linger/duet'])).code, 1, 'no lingering: the system systemd runs the apps');
  });

  await step('duet.service (strict sandbox) starts and duet doctor is green, its app user check included', async (st) => {
    await machine.run(['systemctl', 'start', 'duet-bootup.service', 'duet.service']);
    const up = await pollUntil(async () => ((await healthz(servePort)) ? true : undefined), { timeoutMs: 30_000, initialIntervalMs: 10, maxIntervalMs: 100 });
    assert.ok(up, `duet serve did not answer:\n${await journal(machine, 'duet')}`);
    const doctor = await machine.exec(['duet', 'doctor']);
    st.diagnostic(`duet doctor:\n${doctor.stdout}`);
    // The container has the host's cgroup layout: on a host still on the hybrid hierarchy (no
    // memory controller in cgroup v2) duet-build.slice cannot limit memory, and doctor says so.
    memoryLimits = (await machine.exec(['cat', '/sys/fs/cgroup/cgroup.controllers'])).stdout.split(/\s+/).includes('memory');
    if (!memoryLimits) {
      assert.deepEqual(
        doctor.stdout.split('\n').filter((line) => line.startsWith('✗')),
        [
          "✗ build memory: duet-build.slice's limits are not in force: this machine does not use the unified cgroup v2 hierarchy — boot with systemd.unified_cgroup_hierarchy=1 (Debian 12 does by default); in a container, have the host delegate the controllers",
        ],
      );
      st.diagnostic('this host has no cgroup v2 memory controller: the memory-limit step cannot run here');
    } else assert.equal(doctor.code, 0, `duet doctor is not green:\n${doctor.stdout}\n${doctor.stderr}`);
    assert.match(doctor.stdout, new RegExp(`✓ app user: the apps run as ${APP_USER}`));
  });

  await step('a signed push deploys through duet serve: the color is a system unit running as the app user, serving through nginx', async (st) => {
    const started = Date.now();
    // The root package's postinstall: npm ci runs it, as the install step.
    const packageJson = { name: 'sample-app', version: '1.0.0', private: true, scripts: { start: 'node server.js', postinstall: `${PROBE} install` } };
    const sha = await app.repo.commit({ VERSION: `${app.name}-v2\n`, 'package.json': `${JSON.stringify(packageJson, null, 2)}\n` }, 'v2', { push: false });
    await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
    const response = await postWebhook(servePort, webhookSecret, 'push', branchPush(`duet-tests/${app.name}`, 'main', sha));
    assert.equal(response.status, 202, await response.text());
    const states = await finalStates(github, machine, app.name, sha);
    assert.equal(states.at(-1), 'success', `statuses ${states.join(', ')}\n${await journal(machine, 'duet')}`);
    live = (await liveAt(machine, app, sha)).live;
    const pid = await mainPid(unitOf(live));
    const status = await machine.run(['cat', `/proc/${pid}/status`]);
    const appUid = (await machine.run(['id', '-u', APP_USER])).trim();
    assert.match(status, new RegExp(`^Uid:\\s+${appUid}\\s+${appUid}\\s+${appUid}\\s+${appUid}$`, 'm'), `the app's process:\n${status}`);
    assert.match(
      await machine.run(['cat', `/proc/${pid}/cgroup`]),
      new RegExp(`^0::/system\\.slice/system-duet\\\\x2dapp\\.slice/${unitOf(live).replace('.', '\\.')}$`, 'm'),
    );
    assert.equal(Number((await machine.run(['sudo', '-u', 'duet', 'duet', 'pid', app.name, live])).trim()), pid, 'duet pid names the unit main process');
    st.diagnostic(`push to success ${Date.now() - started} ms; live ${live} pid ${pid} uid ${appUid}; statuses ${states.join(', ')}`);
  });

  await step(
    "from inside the app, its install and its build: duet's credentials, duet serve's environment and the env file are out of reach; the controls read them",
    async (st) => {
      const reports = await probeReports(machine);
      const of = (label: string) => reports.filter((report) => report.startsWith(`as ${label} `));
      for (const label of ['install', 'build', 'start']) {
        assert.ok(of(label).length >= 1, `the ${label} probe did not run:\n${reports.join('\n---\n')}`);
        st.diagnostic(`the ${label} probe:\n${of(label).at(-1)}`);
      }
      const appUid = (await machine.run(['id', '-u', APP_USER])).trim();
      for (const report of [...of('install'), ...of('build')]) {
        // A connection's unit of duet-step.socket, in duet-build.slice: not a child of duet serve, not in its cgroup or namespace.
        assert.match(report, /^cgroup 0::\/duet\.slice\/duet-build\.slice\/duet-step@[^/]+\.service$/m, report);
        assert.match(report, /^wrote the checkout$/m, 'the install and build write node_modules and their output');
      }
      for (const report of of('start')) {
        assert.match(report, /^checkout read-only$/m, "the running app changes nothing of duet's");
      }
      for (const report of reports) {
        assert.match(report, new RegExp(`^as \\w+ uid ${appUid} gid `, 'm'));
        assert.doesNotMatch(report, /^read /m, `the app read something of duet's:\n${report}`);
        assert.match(report, /^denied \/run\/credentials\/duet\.service\/webhook-secret$/m);
        assert.match(report, /^denied \/run\/credentials\/duet\.service\/github-token$/m);
        assert.match(report, /^denied \/proc\/\d+\/environ$/m);
        assert.match(report, /^denied \/var\/lib\/duet\/userapp\/(blue|green)\.env$/m);
        assert.match(report, /^reads the checkout$/m);
        assert.match(report, /^secret variables: 0$/m);
      }
      // The controls: as duet's uid in duet.service's own mount namespace, which is what the app
      // would be without app_user, the same paths are there and readable.
      const serve = await mainPid('duet.service');
      const [uid, gid] = [(await machine.run(['id', '-u', 'duet'])).trim(), (await machine.run(['id', '-g', 'duet'])).trim()];
      const asDuet = (argv: string[]) => machine.run(['nsenter', '-t', String(serve), '-m', '-S', uid, '-G', gid, '--', ...argv]);
      assert.equal((await asDuet(['cat', '/run/credentials/duet.service/webhook-secret'])).trim(), webhookSecret);
      assert.equal((await asDuet(['cat', '/run/credentials/duet.service/github-token'])).trim(), GITHUB_TOKEN);
      assert.match(await asDuet(['cat', `/proc/${serve}/environ`]), /DUET_WEBHOOK_SECRET_FILE=/);
      assert.match(await asDuet(['cat', `/var/lib/duet/${app.name}/${live}.env`]), /^DUET_START=/m);
    },
  );

  await step(
    'a deploy from the CLI (polkit outside the sandbox), stop-instance and start-instance of the standby; the app user and other units are refused',
    async (st) => {
      const sha = await app.repo.commit({ VERSION: `${app.name}-v3\n` }, 'v3', { push: false });
      await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
      const deploy = await machine.exec(['sudo', '-u', 'duet', 'duet', 'deploy', app.name, '--ref', 'main'], { timeoutMs: 180_000 });
      assert.equal(deploy.code, 0, `${deploy.stdout}\n${deploy.stderr}`);
      const standby = live;
      live = (await duetStatus(machine, app.name)).enabled as string;
      assert.notEqual(live, standby);
      assert.match((await getPublic(app.listen)).body, new RegExp(`color ${live} revision ${sha}`));
      await machine.run(['sudo', '-u', 'duet', 'duet', 'stop-instance', app.name, standby]);
      assert.notEqual((await machine.exec(['systemctl', 'is-active', unitOf(standby)])).stdout.trim(), 'active');
      await machine.run(['sudo', '-u', 'duet', 'duet', 'start-instance', app.name, standby], { timeoutMs: 120_000 });
      assert.equal(await machine.run(['systemctl', 'is-active', unitOf(standby)]), 'active');

      const refused = await machine.exec(['sudo', '-u', 'duet', 'systemctl', 'stop', 'nginx.service']);
      assert.notEqual(refused.code, 0, 'duet stopped nginx.service');
      assert.match(refused.stderr, /Interactive authentication required|Access denied/, refused.stderr);
      const byApp = await machine.exec(['sudo', '-u', APP_USER, 'systemctl', 'stop', unitOf(live)]);
      assert.notEqual(byApp.code, 0, 'the app user stopped a color');
      assert.equal(await machine.run(['systemctl', 'is-active', unitOf(live), 'nginx.service']), 'active\nactive');
      st.diagnostic(
        `live ${live}, standby ${standby} stopped and started again; refused: ${refused.stderr.split('\n').find((line) => /authentication|denied/i.test(line))}`,
      );
    },
  );

  await step('a .git the app user swapped into the idle checkout is never run by duet: the checkout is made anew and the deploy succeeds', async (st) => {
    const idle = live === 'blue' ? 'green' : 'blue';
    const checkout = `/var/lib/duet/${app.name}/${idle}`;
    // What a malicious postinstall could do to the other color: its worktree is open to the group.
    const evil = `cd ${checkout} && mv .git .git-theirs && git init --quiet && git config --file .git/config core.fsmonitor 'touch /var/lib/duet/pwned'`;
    await machine.run(['sudo', '-u', APP_USER, 'sh', '-c', evil]);
    const sha = await app.repo.commit({ VERSION: `${app.name}-v4\n` }, 'v4', { push: false });
    await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
    const deploy = await machine.exec(['sudo', '-u', 'duet', 'duet', 'deploy', app.name, '--ref', 'main'], { timeoutMs: 180_000 });
    assert.equal(deploy.code, 0, `${deploy.stdout}\n${deploy.stderr}`);
    const log = await machine.run(['sudo', '-u', 'duet', 'duet', 'logs', app.name]);
    assert.match(log, new RegExp(`${checkout}/\\.git is a directory of uid \\d+, not duet's repository: the checkout is made anew`), log);
    assert.equal((await machine.exec(['test', '-e', '/var/lib/duet/pwned'])).code, 1, "the app user's fsmonitor ran as duet");
    live = (await duetStatus(machine, app.name)).enabled as string;
    assert.equal(live, idle);
    assert.match((await getPublic(app.listen)).body, new RegExp(`color ${live} revision ${sha}`));
    st.diagnostic(`${idle}'s .git replaced by ${APP_USER}; redeployed into a new checkout, live ${live}`);
  });

  await step(
    'a build that allocates far past build_limits.memory_max is killed in duet-build.slice and named; the live color answers every request',
    async (st) => {
      if (!memoryLimits) {
        st.skip("the host's cgroup v2 has no memory controller (a hybrid hierarchy): MemoryMax cannot be in force in its containers");
        return;
      }
      const before = await getPublic(app.listen);
      const slice = await machine.run(['systemctl', 'show', '--property=MemoryHigh,MemoryMax,CPUWeight,IOWeight', 'duet-build.slice']);
      assert.match(slice, new RegExp(`^MemoryMax=${HOG_LIMIT_MB * 1024 * 1024}$`, 'm'), slice);
      const sha = await app.repo.commit({ 'hog.js': HOG }, 'hog', { push: false });
      await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
      let requests = 0;
      const failures: string[] = [];
      let deploying = true;
      const traffic = (async () => {
        while (deploying) {
          requests += 1;
          const answer = await getPublic(app.listen).catch((error: Error) => ({ status: 0, body: error.message }));
          if (answer.status !== 200 || answer.body !== before.body) failures.push(`${answer.status} ${answer.body.slice(0, 80)}`);
        }
      })();
      const deploy = await machine.exec(['sudo', '-u', 'duet', 'duet', 'deploy', app.name, '--ref', 'main'], { timeoutMs: 180_000 });
      deploying = false;
      await traffic;
      const output = `${deploy.stdout}\n${deploy.stderr}`;
      st.diagnostic(
        `duet deploy of ${sha.slice(0, 7)}: exit ${deploy.code}; ${requests} requests meanwhile\n${deploy.stderr.split('\n').slice(-6).join('\n')}`,
      );
      assert.notEqual(deploy.code, 0, output);
      assert.doesNotMatch(output, /was not killed/, 'the slice did not limit the build');
      assert.match(
        output,
        /the build was killed for lack of memory \(limit: memory\.max 0\.3 GiB of \/sys\/fs\/cgroup\/duet\.slice\/duet-build\.slice; memory\.events counted \d+ OOM kill/,
      );
      assert.match(output, /raise build_limits\.memory_max, add swap, or deploy a prebuilt artifact/);
      assert.deepEqual(failures, [], `of ${requests} requests during the deploy`);
      assert.equal((await duetStatus(machine, app.name)).enabled, live);
    },
  );

  await step("a version that crashes at start fails its deploy with the app's own output from the journal; live traffic stays", async (st) => {
    const before = await getPublic(app.listen);
    const sha = await app.repo.commit({ 'behaviour.json': '{"crashOnStart":true}', 'hog.js': null }, 'crash', { push: false });
    await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
    const deploy = await machine.exec(['sudo', '-u', 'duet', 'duet', 'deploy', app.name, '--ref', 'main'], { timeoutMs: 180_000 });
    st.diagnostic(`duet deploy of ${sha.slice(0, 7)}: exit ${deploy.code}\n${deploy.stderr.split('\n').slice(-8).join('\n')}`);
    assert.notEqual(deploy.code, 0);
    assert.match(`${deploy.stdout}\n${deploy.stderr}`, /sample-app: crashing on start as behaviour\.json asks/, 'the output came from the system journal');
    assert.equal((await duetStatus(machine, app.name)).enabled, live);
    const after = await getPublic(app.listen);
    assert.equal(after.status, 200);
    assert.equal(after.body, before.body, 'the live color still serves');
  });

  await step(
    'socket_activation: a system socket unit per color, as the app user, through polkit; requests of death and a restart of duet.service never reach the standby',
    async (st) => {
      const control = `${PROBE_DIR}/control`;
      await machine.run(['install', '-d', '-o', APP_USER, '-g', 'duet', '-m', '0755', control]);
      await writeFile(join(machine.root, 'etc', 'duet', 'duet.yml'), configYaml(app, servePort, github, { activation: control }));
      const install = await machine.run(['duet', 'install']);
      // duet install reloads the running duet serve: its supervision must know the sockets are held.
      assert.match(install, /systemctl reload duet\.service/);
      const reloaded = await pollUntil(async () => ((await journal(machine, 'duet')).includes('duet.yml reloaded') ? true : undefined), { timeoutMs: 20_000 });
      assert.ok(reloaded, `duet serve did not reload duet.yml:\n${await journal(machine, 'duet')}`);
      const sha = await app.repo.commit({ 'behaviour.json': null }, 'well again', { push: false });
      await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
      const deploy = await machine.exec(['sudo', '-u', 'duet', 'duet', 'deploy', app.name, '--ref', 'main'], { timeoutMs: 180_000 });
      assert.equal(deploy.code, 0, `${deploy.stdout}\n${deploy.stderr}`);
      const standby = live;
      live = (await liveAt(machine, app, sha)).live;
      const socketOf = (color: string) => `duet-app@${app.name}-${color}.socket`;
      assert.equal(await machine.run(['systemctl', 'is-active', socketOf(live)]), 'active');
      assert.equal(await machine.run(['stat', '-c', '%U %G %a', `/var/lib/duet/${app.name}/sockets/${live}.sock`]), `${APP_USER} duet 666`);
      const nrestarts = async () => Number(await machine.run(['systemctl', 'show', '--property=NRestarts', '--value', unitOf(live)]));
      const [standbyPid, restartsBefore] = [await mainPid(unitOf(standby)), await nrestarts()];

      await writeFile(join(machine.root, control, 'die-on'), '/die');
      const load = startLoad(app.listen, { concurrency: 2, keepAlive: true });
      const deaths: number[] = [];
      const die = async (count: number) => {
        for (let i = 0; i < count; i += 1) {
          deaths.push((await getPublic(app.listen, '/die').catch(() => ({ status: 0 }))).status);
          await sleep(350); // the attack's pace, not a condition to wait for
        }
      };
      try {
        await die(10);
        await machine.run(['systemctl', 'restart', 'duet.service']);
        await die(10);
      } finally {
        await load.stop();
        await rm(join(machine.root, control, 'die-on'), { force: true });
      }
      st.diagnostic(
        `duet serve's supervision:\n${(await journal(machine, 'duet'))
          .split('\n')
          .filter((line) => /supervision|failover/.test(line))
          .slice(-12)
          .join('\n')}`,
      );
      const report = load.report;
      const restarts = (await nrestarts()) - restartsBefore;
      st.diagnostic(`deaths ${JSON.stringify(deaths)}; ${live} restarted ${restarts} times by systemd`);
      st.diagnostic(`load: ${report.requests} requests, ${report.non2xx} non-2xx ${JSON.stringify(report.statuses)}, ${report.errors} errors`);
      assert.equal(await mainPid(unitOf(standby)), standbyPid, 'the standby never received a request of death');
      assert.ok(restarts >= 15, `${live} was killed and restarted again and again: ${restarts}`);
      assert.equal(await machine.run(['systemctl', 'is-active', socketOf(live)]), 'active', 'its socket never closed');
      assert.equal((await duetStatus(machine, app.name)).enabled, live, 'no failover');
      assert.equal(report.errors, 0);
      assert.ok(report.non2xx <= 2 * deaths.length, `at most the requests in flight in each dying process: ${report.non2xx} of ${report.requests}`);

      await machine.run(['sudo', '-u', 'duet', 'duet', 'stop-instance', app.name, live === 'blue' ? 'green' : 'blue']);
      await machine.run(['sudo', '-u', 'duet', 'duet', 'start-instance', app.name, standby], { timeoutMs: 120_000 });
      assert.equal(
        await machine.run(['systemctl', 'is-active', socketOf(standby), unitOf(standby)]),
        'active\nactive',
        'polkit let duet start the socket unit',
      );
    },
  );
});

/** The probe's reports, one per start of a color. */
async function probeReports(machine: { root: string }): Promise<string[]> {
  const dir = join(machine.root, PROBE_DIR);
  const files = (await readdir(dir)).filter((file) => file.startsWith('probe-')).sort();
  return Promise.all(files.map(async (file) => (await readFile(join(dir, file), 'utf8')).trim()));
}

/** `activation`: socket_activation on, and the sample app's CONTROL_DIR there. */
function configYaml(app: AppOnMachine, servePort: number, github: GitHubServer, o: { activation?: string } = {}): string {
  return [
    '# duet.yml of the server suite (test/server/app-user.test.ts)',
    'state_dir: /var/lib/duet',
    'user: duet',
    'runner: systemd',
    `app_user: ${APP_USER}`,
    'nginx:',
    '  managed: false',
    '  conf_dir: /etc/duet/nginx.d',
    'server:',
    `  listen: 127.0.0.1:${servePort}`,
    `  public_url: http://127.0.0.1:${servePort}`,
    'github:',
    `  api_url: http://127.0.0.1:${github.port}`,
    // Far below the machine's memory: a build that allocates past it is killed inside the slice.
    `build_limits: { memory_high: ${HOG_LIMIT_MB - 64}M, memory_max: ${HOG_LIMIT_MB}M }`,
    'apps:',
    `  ${app.name}:`,
    `    repo: duet-tests/${app.name}`,
    `    clone_url: file://${app.bareInMachine}`,
    `    listen: "127.0.0.1:${app.listen}"`,
    `    server_name: ${app.name}.test`,
    '    switch: socket',
    '    install: npm ci --no-audit --no-fund',
    `    build: ${PROBE} build && if [ -f hog.js ]; then node hog.js; fi`,
    `    start: ${PROBE} start && exec node server.js`,
    '    health: { path: /health, timeout_s: 30, watch_s: 1 }',
    '    standby: keep',
    '    drain_s: 0.5',
    ...(o.activation ? ['    socket_activation: true', `    env: { CONTROL_DIR: ${o.activation} }`] : []),
    '',
  ].join('\n');
}
