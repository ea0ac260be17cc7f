import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pollUntil } from '../../src/util/poll.js';
import type { GitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { getPublic } from '../support/duet.js';
import { startLoad, type LoadReport } from '../support/load.js';
import { test, type Container } from './container.js';
import { installRelease, upgradeRelease } from './release.js';
import {
  appRepoInMachine,
  bootedMachine,
  branchPush,
  duetStatus,
  finalStates,
  healthz,
  journal,
  liveAt,
  postWebhook,
  restartServe,
  statesOf,
  stepsOf,
  type AppOnMachine,
} from './apps.js';

/**
 * The README's "Running duet on a server", step by step, as an operator does it, on a booted
 * Debian 12 with systemd as PID 1. One machine for the whole walk: each step builds on the one
 * before, as on a real server, and a step is skipped once one before it failed.
 */

const GITHUB_TOKEN = 'ghp_servertestservertestservertest0000';

interface World {
  machine: Container;
  github: GitHubServer;
  servePort: number;
  /** portapp's HTTPS port (tls files, a certificate made on the machine). */
  tlsPort: number;
  apps: AppOnMachine[];
  webhookSecret: string;
  apiToken: string;
}

test('an operator sets duet up on a booted Debian 12 server, as the README says', async (t) => {
  const { github, machine } = await bootedMachine(t);

  const world: World = { machine, github, servePort: await freePort(), tlsPort: await freePort(), apps: [], webhookSecret: '', apiToken: '' };
  for (const [name, mode] of [
    ['sockapp', 'socket'],
    ['portapp', 'port'],
  ] as const) {
    world.apps.push(await appRepoInMachine(t, machine, name, mode));
  }

  const step = stepsOf(t);

  await step('1-4. install duet as a release, duet install, secrets as credentials files: doctor is green', async (st) => {
    const started = Date.now();
    await installRelease(machine);
    assert.equal(await machine.run(['sh', '-c', 'command -v duet']), '/usr/bin/duet');
    st.diagnostic(`duet copied in and npm install -g: ${Date.now() - started} ms`);

    await mkdir(join(machine.root, 'etc', 'duet'), { recursive: true });
    await writeFile(join(machine.root, 'etc', 'duet', 'duet.yml'), configYaml(world));
    // portapp's HTTPS (tls: files): a certificate as an operator's CA would hand it over.
    await makeCertificateInMachine(machine);
    const first = await machine.run(['duet', 'install']);
    st.diagnostic(
      first
        .split('\n')
        .filter((line) => /change|warning/.test(line))
        .join(' | '),
    );
    // Step 3: one value per file, root's only, as the README's commands write them.
    await machine.sh('umask 077; openssl rand -hex 32 > /etc/duet/credentials/webhook-secret');
    await machine.sh('umask 077; openssl rand -hex 32 > /etc/duet/credentials/api-token');
    await machine.run(['sh', '-c', 'umask 077; cat > /etc/duet/credentials/github-token'], { input: `${GITHUB_TOKEN}\n` });
    world.webhookSecret = (await machine.run(['cat', '/etc/duet/credentials/webhook-secret'])).trim();
    world.apiToken = (await machine.run(['cat', '/etc/duet/credentials/api-token'])).trim();
    await machine.run(['duet', 'install']);
    assert.match(await machine.run(['duet', 'install']), /nothing to change/, 'a second duet install changes nothing');

    // What the install made, as the machine has it.
    assert.equal(
      await machine.run([
        'stat',
        '-c',
        '%a %U:%G',
        '/etc/duet/credentials',
        '/etc/duet/credentials/webhook-secret',
        '/etc/duet/duet.yml',
        '/etc/sudoers.d/duet',
      ]),
      '700 root:root\n600 root:root\n640 root:duet\n440 root:root',
    );
    assert.equal(await machine.run(['systemctl', 'is-enabled', 'duet.service', 'duet-bootup.service']), 'enabled\nenabled');
    assert.match(await machine.run(['getent', 'passwd', 'duet']), /^duet:x:\d+:\d+:.*:\/var\/lib\/duet:\/usr\/sbin\/nologin$/);

    const doctor = await machine.exec(['duet', 'doctor']);
    st.diagnostic(`duet doctor:\n${doctor.stdout}`);
    assert.equal(doctor.code, 0, `duet doctor is not green:\n${doctor.stdout}\n${doctor.stderr}`);
    assert.doesNotMatch(doctor.stdout, /✗/);
    assert.match(doctor.stdout, /✓ github sockapp: classic token/);
    assert.ok(github.matching(/^\/repos\/duet-tests\/sockapp$/, 'GET').length > 0, 'doctor asked the fake GitHub API');
    assert.equal(github.matching(/./, 'POST').length, 0, 'doctor never writes to GitHub');
  });

  await step('5. systemctl start duet-bootup.service duet.service: duet serve answers from the host', async () => {
    await machine.run(['systemctl', 'start', 'duet-bootup.service', 'duet.service']);
    const up = await pollUntil(async () => ((await fetch(`http://127.0.0.1:${world.servePort}/healthz`).catch(() => undefined))?.ok ? true : undefined), {
      timeoutMs: 30_000,
    });
    assert.ok(up, `duet serve did not answer:\n${await machine.exec(['journalctl', '-u', 'duet', '--no-pager', '-n', '50']).then((r) => r.stdout)}`);
  });

  await step('the sandbox of duet.service is in force (checked from inside its namespaces)', async () => {
    const pid = Number(await machine.run(['systemctl', 'show', '--property=MainPID', '--value', 'duet.service']));
    assert.ok(pid > 0);
    // The kernel's view of the process systemd started.
    const status = await machine.run(['cat', `/proc/${pid}/status`]);
    assert.match(status, /^Uid:\s+(\d+)\s+\1\s+\1\s+\1$/m);
    assert.notEqual(/^Uid:\s+(\d+)/m.exec(status)?.[1], '0', 'duet serve runs as root');
    // As the service user, in the service's own mount namespace: what duet serve and the apps see.
    const [uid, gid] = [/^Uid:\s+(\d+)/m.exec(status)![1]!, /^Gid:\s+(\d+)/m.exec(status)![1]!];
    const inside = (script: string) => machine.exec(['nsenter', '-t', String(pid), '-m', '-S', uid, '-G', gid, '--', 'sh', '-c', script]);
    for (const path of ['/etc/duet-escape', '/usr/duet-escape', '/usr/local/bin/duet-escape']) {
      const attempt = await inside(`touch ${path}`);
      assert.notEqual(attempt.code, 0, `the service could write ${path}`);
      assert.match(attempt.stderr, /Read-only file system/, `${path}: ${attempt.stderr}`);
    }
    // The control: outside the sandbox, root writes there; so Read-only above is the sandbox's doing.
    await machine.sh('touch /etc/duet-escape /usr/local/bin/duet-escape && rm /etc/duet-escape /usr/local/bin/duet-escape');
    assert.equal((await inside('touch /var/lib/duet/sandbox-probe && rm /var/lib/duet/sandbox-probe')).code, 0, 'the state dir is writable');
    assert.equal((await inside('touch /etc/duet/nginx.d/sandbox-probe && rm /etc/duet/nginx.d/sandbox-probe')).code, 0, 'the nginx include dir is writable');
    // ProtectHome=yes: /root and /home are empty and unwritable; PrivateTmp=yes: its /tmp is not the machine's.
    await machine.sh(
      'mkdir -p /home/alice && echo hers > /home/alice/visible && chmod -R a+rX /home/alice && echo machine > /tmp/machine-tmp-probe && chmod 644 /tmp/machine-tmp-probe',
    );
    assert.equal((await inside('cat /home/alice/visible')).code, 1, 'the service sees /home');
    assert.equal((await inside('cat /tmp/machine-tmp-probe')).code, 1, "the service sees the machine's /tmp");
    // The credentials: readable in the service, root's outside it.
    assert.equal((await inside('cat "$(ls -d /run/credentials/duet.service)/webhook-secret"')).stdout.trim(), world.webhookSecret);
    const outside = await machine.exec(['setpriv', '--reuid=duet', '--regid=duet', '--init-groups', 'cat', '/etc/duet/credentials/webhook-secret']);
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /Permission denied/);
    // sudoers: the duet user may run exactly nginx -t and nginx -s reload as root, nothing else.
    const sudo = (argv: string) => machine.exec(['setpriv', '--reuid=duet', '--regid=duet', '--init-groups', 'sh', '-c', `sudo -n ${argv}`]);
    assert.equal((await sudo('/usr/sbin/nginx -t')).code, 0);
    for (const argv of ['/usr/sbin/nginx -s stop', '/bin/sh -c id', '/usr/sbin/nginx']) {
      const refused = await sudo(argv);
      assert.notEqual(refused.code, 0, `sudo ${argv} was allowed`);
      assert.match(refused.stderr, /a password is required|not allowed/, `sudo ${argv}: ${refused.stderr}`);
    }
  });

  // Deploy rounds: the first push makes one color live, the second the other, keeping the first
  // as a warm standby. Each through GitHub's way in: a signed push delivery from the host.
  const deployed = new Map<string, { live: string; standby: string; sha: string }>();
  await step('6-7. signed push webhooks from the host deploy both apps; commit statuses reach the fake GitHub API', async (st) => {
    for (const round of [1, 2]) {
      for (const app of world.apps) {
        const started = Date.now();
        const sha = round === 1 ? app.repo.initialSha : await app.repo.commit({ VERSION: `${app.name}-v2\n` }, 'v2', { push: false });
        await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
        const response = await postWebhook(world.servePort, world.webhookSecret, 'push', branchPush(`duet-tests/${app.name}`, 'main', sha));
        assert.equal(response.status, 202, `webhook answered ${response.status}: ${await response.text()}`);
        const states = await finalStates(github, machine, app.name, sha, 120_000);
        // pending when queued, pending when it starts, success at the end.
        assert.deepEqual(
          [states.at(-1), new Set(states.slice(0, -1))],
          ['success', new Set(['pending'])],
          `${app.name} round ${round}: statuses ${states.join(', ')}\n${await journal(machine, 'duet')}`,
        );
        const { status, live } = await liveAt(machine, app, sha);
        if (round === 2) {
          const standby = live === 'blue' ? 'green' : 'blue';
          assert.equal(status.colors[standby].healthy, true, `${app.name}: the standby ${standby} is not warm`);
          deployed.set(app.name, { live, standby, sha });
        }
        st.diagnostic(`${app.name} round ${round}: push to success status ${Date.now() - started} ms, live ${live}`);
      }
    }
    // The port-mode switch reloaded the system nginx through sudo, as the duet user.
    assert.match(await journal(machine, 'duet'), /portapp/);
  });

  await step('a reboot (poweroff, boot the same tree): both apps come back on the live color, standby warm, no manual step', async (st) => {
    const off = await machine.poweroff();
    const started = Date.now();
    const again = await machine.boot();
    st.diagnostic(`poweroff ${off} ms; boot to ${again.state} ${again.ms} ms`);
    assert.deepEqual(again.failed, []);
    const serving = new Map<string, number>();
    const ready = await pollUntil(
      async () => {
        for (const app of world.apps) {
          if (serving.has(app.name)) continue;
          const want = deployed.get(app.name)!;
          const answer = await getPublic(app.listen).catch(() => undefined);
          if (answer?.status === 200 && answer.body.includes(`color ${want.live} revision ${want.sha}`)) serving.set(app.name, Date.now() - started);
        }
        return serving.size === world.apps.length ? true : undefined;
      },
      { timeoutMs: 120_000, initialIntervalMs: 20, maxIntervalMs: 100 },
    );
    assert.ok(
      ready,
      `not serving after the reboot: ${world.apps
        .filter((a) => !serving.has(a.name))
        .map((a) => a.name)
        .join(', ')}\n${await journal(machine, 'duet-bootup')}`,
    );
    const total = Math.max(...serving.values());
    st.diagnostic(`reboot to serving the live color: ${[...serving].map(([name, ms]) => `${name} ${ms} ms`).join(', ')} (from starting systemd-nspawn)`);
    for (const app of world.apps) {
      const want = deployed.get(app.name)!;
      const status = await duetStatus(machine, app.name);
      assert.equal(status.enabled, want.live);
      assert.equal(status.colors[want.live].healthy, true);
      assert.equal(status.colors[want.standby].healthy, true, `${app.name}: the standby is not warm after the reboot`);
    }
    assert.equal(await machine.run(['systemctl', 'is-active', 'duet-bootup.service', 'duet.service']), 'active\nactive');
    assert.ok(total < 15_000, `serving again took ${total} ms after the boot began, over the 15 s bound`);
  });

  await step('kill -9 of duet serve: systemd restarts it, and the deliveries accepted just before the kill still deploy', async (st) => {
    const before = await serveUnit(machine);
    // A new commit of each app, pushed, delivered and accepted (202): then at once the kill.
    const wanted = new Map<string, string>();
    for (const app of world.apps) {
      const sha = await app.repo.commit({ VERSION: `${app.name}-v3\n` }, 'v3', { push: false });
      await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
      wanted.set(app.name, sha);
    }
    for (const app of world.apps) {
      const response = await postWebhook(world.servePort, world.webhookSecret, 'push', branchPush(`duet-tests/${app.name}`, 'main', wanted.get(app.name)!));
      assert.equal(response.status, 202, `webhook answered ${response.status}: ${await response.text()}`);
    }
    // kill is the shell's builtin: minbase has no procps.
    await machine.sh(`kill -9 ${before.pid}`);
    const killed = Date.now();
    const postedBeforeKill = world.apps.map((app) => `${app.name}: ${statesOf(github, app.name, wanted.get(app.name)!).join(', ') || 'none yet'}`);
    st.diagnostic(`statuses at the kill: ${postedBeforeKill.join('; ')}`);

    // Down first (the old process is gone), then up again under systemd's restart.
    const down = await pollUntil(async () => ((await healthz(world.servePort)) ? undefined : true), {
      timeoutMs: 10_000,
      initialIntervalMs: 5,
      maxIntervalMs: 20,
    });
    assert.ok(down, '/healthz kept answering after kill -9');
    const up = await pollUntil(async () => ((await healthz(world.servePort)) ? Date.now() - killed : undefined), {
      timeoutMs: 30_000,
      initialIntervalMs: 10,
      maxIntervalMs: 25,
    });
    assert.ok(up !== undefined, `duet serve did not come back after kill -9:\n${await journal(machine, 'duet')}`);
    const after = await serveUnit(machine);
    st.diagnostic(
      `kill -9 to /healthz answering again: ${up} ms (RestartSec=2s); pid ${before.pid} -> ${after.pid}, NRestarts ${before.restarts} -> ${after.restarts}`,
    );
    assert.notEqual(after.pid, before.pid);
    assert.equal(after.restarts, before.restarts + 1, 'systemd counted the restart');
    assert.equal(after.result, 'success');

    for (const app of world.apps) {
      const sha = wanted.get(app.name)!;
      const states = await finalStates(github, machine, app.name, sha, 120_000);
      st.diagnostic(`${app.name}: statuses ${states.join(', ')}`);
      assert.equal(states.at(-1), 'success', `${app.name}: statuses ${states.join(', ')}\n${await journal(machine, 'duet')}`);
      const { live } = await liveAt(machine, app, sha);
      deployed.set(app.name, { live, standby: live === 'blue' ? 'green' : 'blue', sha });
    }
  });

  await step('systemctl restart duet during load on both public ports: 0 failed requests, the apps stay on their live color', async (st) => {
    const before = await serveUnit(machine);
    const result = await underLoad(world, async () => {
      const up = await restartServe(machine, world.servePort);
      assert.ok(up !== undefined, `duet serve did not answer after the restart:\n${await journal(machine, 'duet')}`);
      st.diagnostic(`systemctl restart duet to /healthz answering: ${up} ms`);
    });
    reportLoad(st, 'restart', result);
    assert.notEqual((await serveUnit(machine)).pid, before.pid, 'duet serve was not restarted');
    await assertStillLive(world, deployed);
  });

  await step(
    '"Upgrading duet" under load: a new release, duet install, systemctl restart duet, duet bootup: 0 failed requests, live colors kept',
    async (st) => {
      const marker = `upgrade-${Date.now().toString(36)}`;
      const before = await serveUnit(machine);
      const result = await underLoad(world, async () => {
        // cd /opt/duet && git pull && npm ci && npm run build: the new release in place.
        await upgradeRelease(machine, marker);
        // sudo duet install: re-renders the units, here the changed duet.service, and reloads systemd.
        const install = await machine.run(['duet', 'install']);
        st.diagnostic(
          `duet install: ${install
            .split('\n')
            .filter((line) => /duet\.service|daemon-reload|change/.test(line))
            .join(' | ')}`,
        );
        assert.match(install, /daemon-reload/, 'duet install did not reload systemd after the unit changed');
        const up = await restartServe(machine, world.servePort);
        assert.ok(up !== undefined, `duet serve did not answer after the upgrade:\n${await journal(machine, 'duet')}`);
        st.diagnostic(`systemctl restart duet (new release) to /healthz answering: ${up} ms`);
        // sudo -u duet duet bootup: re-applies each app's nginx file, leaving running colors alone.
        await machine.run(['sudo', '-u', 'duet', 'duet', 'bootup']);
      });
      reportLoad(st, 'upgrade', result);
      // The unit systemd runs is the new one, and the process is the new release's.
      assert.match(await machine.run(['cat', '/etc/systemd/system/duet.service']), new RegExp(`# duet release ${marker}`));
      assert.equal(await machine.run(['systemctl', 'show', '--property=NeedDaemonReload', '--value', 'duet.service']), 'no');
      const after = await serveUnit(machine);
      assert.notEqual(after.pid, before.pid, 'duet serve was not restarted');
      const main = (await machine.run(['cat', `/proc/${after.pid}/cmdline`])).split('\0').find((arg) => arg.endsWith('duet.mjs'));
      assert.ok(main, 'duet serve runs no duet.mjs');
      assert.match(await machine.run(['tail', '-n', '1', main]), new RegExp(`duet release ${marker}`), `${main} is not the new release`);
      assert.match(await machine.run(['duet', 'install']), /nothing to change/, 'a second duet install after the upgrade changes nothing');
      const doctor = await machine.exec(['duet', 'doctor']);
      assert.equal(doctor.code, 0, `duet doctor is not green after the upgrade:\n${doctor.stdout}\n${doctor.stderr}`);
      await assertStillLive(world, deployed);
    },
  );

  await step(
    "tls files as duet's own user: a certificate replaced by root is served after sudo -u duet duet reload-tls, under load, 0 failed Connection: close requests",
    async (st) => {
      const fingerprint = async () => new X509Certificate(await readFile(join(machine.root, TLS_CERT))).fingerprint256;
      assert.equal(await servedFingerprint(world.tlsPort), await fingerprint(), 'nginx presents the certificate of duet.yml');
      const portapp = (await duetStatus(machine, 'portapp')).tls;
      assert.equal(portapp?.mode, 'files');
      assert.ok(portapp.daysLeft >= 88, `duet status reads the served certificate's expiry (${JSON.stringify(portapp)})`);

      await makeCertificateInMachine(machine);
      const renewed = await fingerprint();
      assert.notEqual(await servedFingerprint(world.tlsPort), renewed, 'nginx keeps the old certificate until told');
      const result = await underLoad(
        world,
        async () => {
          const reload = await machine.exec(['sudo', '-u', 'duet', 'duet', 'reload-tls', 'portapp']);
          assert.equal(reload.code, 0, `duet reload-tls as duet:\n${reload.stdout}\n${reload.stderr}`);
        },
        { reloads: true },
      );
      reportLoad(st, 'reload-tls', result);
      assert.equal(await servedFingerprint(world.tlsPort), renewed, 'the replaced certificate is served');
      const doctor = await machine.exec(['duet', 'doctor']);
      assert.match(doctor.stdout, /✓ tls portapp:/, doctor.stdout);
      await assertStillLive(world, deployed);
    },
  );
});

const TLS_CERT = '/etc/duet/tls/portapp.crt';
const TLS_KEY = '/etc/duet/tls/portapp.key';

/** A new self-signed certificate for portapp.test at TLS_CERT and TLS_KEY, root's, as certbot or an operator writes one. */
async function makeCertificateInMachine(machine: Container): Promise<void> {
  await machine.sh(
    'mkdir -p /etc/duet/tls && umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 90 -subj /CN=portapp.test ' +
      `-addext subjectAltName=DNS:portapp.test -keyout ${TLS_KEY} -out ${TLS_CERT} 2>/dev/null && chmod 644 ${TLS_CERT}`,
  );
}

/** The fingerprint of the certificate the machine's nginx presents for portapp.test now. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'portapp.test', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('no TLS handshake within 5 s')));
    socket.on('error', reject);
  });
}

/** duet.service's main pid, how often systemd restarted it, and the result of its last run. */
async function serveUnit(machine: Container): Promise<{ pid: number; restarts: number; result: string }> {
  const out = await machine.run(['systemctl', 'show', '--property=MainPID,NRestarts,Result', 'duet.service']);
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out)?.[1] ?? '';
  return { pid: Number(value('MainPID')), restarts: Number(value('NRestarts')), result: value('Result') };
}

/**
 * Load on every app's public port (4 loops each; keep-alive in socket mode, where nginx is never
 * reloaded, unless `reloads`; a connection per request in port mode, as the other zero-downtime
 * tests do) while
 * `during` runs, with at least LOAD_MARGIN requests answered on each port before it starts and
 * after it ends, so the load covers the whole of it.
 */
const LOAD_MARGIN = 200;
async function underLoad(world: World, during: () => Promise<void>, o: { reloads?: boolean } = {}): Promise<Map<string, LoadReport>> {
  // A reload of nginx (reload-tls) closes idle keep-alive connections of every app on it.
  const loads = world.apps.map((app) => ({ app, load: startLoad(app.listen, { concurrency: 4, keepAlive: app.mode === 'socket' && !o.reloads }) }));
  const reports = new Map<string, LoadReport>();
  try {
    const margin = async (from: number[]) =>
      pollUntil(async () => (loads.every(({ load }, i) => load.report.requests >= from[i]! + LOAD_MARGIN) ? true : undefined), {
        timeoutMs: 30_000,
        initialIntervalMs: 5,
        maxIntervalMs: 50,
      });
    assert.ok(await margin(loads.map(() => 0)), 'the load did not get going');
    await during();
    assert.ok(await margin(loads.map(({ load }) => load.report.requests)), 'the load stalled after the step');
  } finally {
    for (const { app, load } of loads) reports.set(app.name, await load.stop());
  }
  return reports;
}

function reportLoad(st: TestContext, what: string, reports: Map<string, LoadReport>): void {
  for (const [app, report] of reports) {
    st.diagnostic(
      `${what} under load, ${app}: ${report.requests} requests, ${report.ok} ok, ${report.non2xx} non-2xx, ${report.errors} errors${report.firstError ? ` (first: ${report.firstError})` : ''}`,
    );
  }
  for (const [app, report] of reports) {
    assert.equal(
      report.non2xx + report.errors,
      0,
      `${app}: ${report.non2xx} non-2xx and ${report.errors} failed requests during the ${what} (first: ${report.firstError})`,
    );
    assert.equal(report.ok, report.requests);
  }
}

/** Every app still enabled on the color that was live, serving that revision, the standby warm. */
async function assertStillLive(world: World, deployed: Map<string, { live: string; standby: string; sha: string }>): Promise<void> {
  for (const app of world.apps) {
    const want = deployed.get(app.name)!;
    const status = await duetStatus(world.machine, app.name);
    assert.equal(status.enabled, want.live, `${app.name} is not on its live color ${want.live}`);
    assert.equal(status.colors[want.live].revision, want.sha);
    assert.equal(status.colors[want.standby].healthy, true, `${app.name}: the standby ${want.standby} is not warm`);
    const answer = await getPublic(app.listen);
    assert.equal(answer.status, 200);
    assert.match(answer.body, new RegExp(`color ${want.live} revision ${want.sha}`));
  }
}

function configYaml(world: World): string {
  const apps = world.apps.flatMap((app) => [
    `  ${app.name}:`,
    `    repo: duet-tests/${app.name}`,
    `    clone_url: file://${app.bareInMachine}`,
    `    listen: "127.0.0.1:${app.listen}"`,
    `    server_name: ${app.name}.test`,
    `    switch: ${app.mode}`,
    `    ports: { blue: ${app.ports.blue}, green: ${app.ports.green} }`,
    '    install: npm ci --no-audit --no-fund',
    '    build: npm run build --if-present',
    '    start: exec node server.js',
    '    health: { path: /health, timeout_s: 30, watch_s: 1 }',
    '    standby: keep',
    '    drain_s: 0.5',
    '    deploy_on: { branches: [main], tags: ["v*"] }',
    ...(app.mode === 'port'
      ? [`    tls: { mode: files, listen: "127.0.0.1:${world.tlsPort}", cert: ${TLS_CERT}, key: ${TLS_KEY}, redirect_http: false }`]
      : []),
  ]);
  return [
    '# duet.yml of the server suite (test/server/operator.test.ts)',
    'state_dir: /var/lib/duet',
    'user: duet',
    'runner: process',
    'nginx:',
    '  managed: false',
    '  conf_dir: /etc/duet/nginx.d',
    '  test_cmd: [sudo, -n, /usr/sbin/nginx, -t]',
    '  reload_cmd: [sudo, -n, /usr/sbin/nginx, -s, reload]',
    'server:',
    `  listen: 127.0.0.1:${world.servePort}`,
    `  public_url: http://127.0.0.1:${world.servePort}`,
    'github:',
    `  api_url: http://127.0.0.1:${world.github.port}`,
    'apps:',
    ...apps,
    '',
  ].join('\n');
}
