import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { getPublic } from '../support/duet.js';
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
  postWebhook,
  stepsOf,
  type AppOnMachine,
} from './apps.js';

/**
 * `env_files` with `app_user`: the app's secrets are a root-only file that systemd reads, for the
 * app's units and for the runner of its own step socket (its install, build and release), and
 * duet's uid never holds a value. Checked on a booted machine: the app and its build see the
 * values, every deploy log, duet's journal, its status, its own output and GitHub's statuses have
 * them masked or not at all, a missing `secrets` name fails the deploy at update naming the key,
 * and `duet restart` brings a changed value in under load without a failed request.
 */

const APP_USER = 'duet-app';
const GITHUB_TOKEN = 'ghp_appsecretstestappsecrets00000000';
const ENV_FILE = '/etc/duet/env/secretapp.env';
/**
 * Where the start command looks for the order to crash (/etc is readable under ProtectSystem=full),
 * a second after its start: caught by the health check, which quotes the journal (one that exits
 * at once can be caught by the start, which quotes nothing).
 */
const CRASH_FILE = '/etc/duet/crash-on-start';
const FIRST = 'first-secret-value-1234';
const SECOND = 'second-secret-value-9876';
const TOKEN = 'build-token-value-5678';
const VALUES = [FIRST, SECOND, TOKEN];

test('app_user with env_files: the app and its build get the values through systemd, duet masks them everywhere, checks secrets at update, and restarts into a new value with 0 failed requests', async (t) => {
  const { github, machine } = await bootedMachine(t);
  const app = await appRepoInMachine(t, machine, 'secretapp', 'socket');
  const servePort = await freePort();
  const step = stepsOf(t);
  const writeEnv = (lines: string[]) => machine.sh(`install -d -m 0755 /etc/duet/env && umask 077 && cat > ${ENV_FILE}`, { input: `${lines.join('\n')}\n` });
  const deployFromShell = (command: 'deploy' | 'restart') =>
    machine.exec(['sudo', '-u', 'duet', 'duet', command, app.name, ...(command === 'deploy' ? ['--ref', 'main'] : [])], { timeoutMs: 180_000 });
  const seen = (name: string) => getPublic(app.listen, `/env/${name}`).then((answer) => answer.body);
  let webhookSecret = '';

  await step("duet install: the drop-ins, and a step socket of the app's own, whose runner gets the env file as a credential", async () => {
    await writeEnv([`APP_SECRET=${FIRST}`, `BUILD_TOKEN=${TOKEN}`]);
    webhookSecret = await installWithSecrets(machine, configYaml(app, servePort, github.port), GITHUB_TOKEN);
    assert.match(await machine.run(['cat', `/etc/systemd/system/duet-step-${app.name}@.service`]), new RegExp(`^LoadCredential=env-0:${ENV_FILE}$`, 'm'));
    assert.equal((await machine.run(['stat', '-c', '%U %a', ENV_FILE])).trim(), 'root 600');
    await machine.run(['systemctl', 'start', 'duet-bootup.service', 'duet.service']);
    const up = await pollUntil(async () => ((await healthz(servePort)) ? true : undefined), { timeoutMs: 30_000, initialIntervalMs: 10, maxIntervalMs: 100 });
    assert.ok(up, `duet serve did not answer:\n${await journal(machine, 'duet')}`);
    assert.equal(await machine.run(['systemctl', 'is-active', `duet-step-${app.name}.socket`]), 'active');
  });

  await step('a push deploys: the app sees its secret, the build its build_env name only, and the deploy log has them masked', async (st) => {
    const sha = await app.repo.commit({ VERSION: `${app.name}-v2\n` }, 'v2', { push: false });
    await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
    const response = await postWebhook(servePort, webhookSecret, 'push', branchPush(`duet-tests/${app.name}`, 'main', sha));
    assert.equal(response.status, 202, await response.text());
    const states = await finalStates(github, machine, app.name, sha);
    assert.equal(states.at(-1), 'success', `statuses ${states.join(', ')}\n${await journal(machine, 'duet')}`);
    assert.equal(await seen('APP_SECRET'), FIRST);
    assert.equal(await seen('BUILD_TOKEN'), TOKEN, 'the app gets every value');
    assert.equal((await getPublic(app.listen, '/built')).body.trim(), `token=${TOKEN} secret=unset`, 'the build gets build_env only');
    const log = await deployLogs(machine, app);
    st.diagnostic(
      log
        .split('\n')
        .filter((line) => / sees /.test(line))
        .join('\n'),
    );
    assert.match(log, /^build sees token \*\*\* and secret unset$/m);
    assert.match(log, /^release sees \*\*\*$/m, 'the release gets every value');
  });

  await step('a secrets name the env file lacks fails the deploy at update, naming the key; the live color is untouched', async () => {
    await writeEnv([`BUILD_TOKEN=${TOKEN}`]);
    await app.repo.commit({ VERSION: `${app.name}-v3\n` }, 'v3', { push: false });
    await app.repo.git(['push', '--quiet', '--force', app.bareOnHost, 'main']);
    const before = (await duetStatus(machine, app.name)).enabled as string;
    const deploy = await deployFromShell('deploy');
    const output = `${deploy.stdout}\n${deploy.stderr}`;
    assert.notEqual(deploy.code, 0, output);
    assert.match(output, /update/);
    assert.match(output, /secretapp needs APP_SECRET \(secrets in duet\.yml\), which its env_files do not set/);
    assert.equal((await duetStatus(machine, app.name)).enabled, before);
    assert.equal(await seen('APP_SECRET'), FIRST);
  });

  await step("a color that crashes at start: the failed deploy quotes the app's journal lines with the secret masked", async () => {
    await writeEnv([`APP_SECRET=${FIRST}`, `BUILD_TOKEN=${TOKEN}`]);
    await machine.run(['touch', CRASH_FILE]);
    const deploy = await deployFromShell('deploy');
    await machine.run(['rm', CRASH_FILE]);
    const output = `${deploy.stdout}\n${deploy.stderr}`;
    assert.notEqual(deploy.code, 0, output);
    assert.match(output, /^start sees \*\*\*$/m, `the journal's lines are quoted, masked:\n${output}`);
    for (const value of VALUES) assert.ok(!output.includes(value), `a value in duet's output:\n${output}`);
  });

  await step('a changed value: duet restart brings it in under load, 0 failed requests', async (st) => {
    await writeEnv([`APP_SECRET=${SECOND}`, `BUILD_TOKEN=${TOKEN}`]);
    const pending = await machine.run(['sudo', '-u', 'duet', 'duet', 'status', app.name]);
    // build_env makes the files part of what the build is made with: a rebuild, not only a restart.
    assert.match(pending, /configuration changed since start/);
    const load = startLoad(app.listen, { concurrency: 4, keepAlive: true });
    const restart = await deployFromShell('restart');
    const report = await load.stop();
    st.diagnostic(`duet restart under load: ${report.requests} requests, ${report.ok} ok, ${report.non2xx} non-2xx, ${report.errors} errors`);
    assert.equal(restart.code, 0, `${restart.stdout}\n${restart.stderr}`);
    assert.equal(report.ok, report.requests, `failed requests: ${JSON.stringify(report)}`);
    assert.ok(report.requests > 0);
    assert.equal(await seen('APP_SECRET'), SECOND);
  });

  await step("no value in duet serve's environment, its journal, deploy logs, output, status, or GitHub's statuses", async () => {
    const serve = (await machine.run(['systemctl', 'show', '--property=MainPID', '--value', 'duet.service'])).trim();
    const places = {
      environ: await machine.run(['cat', `/proc/${serve}/environ`]),
      journal: await readFile(join(machine.root, 'var/lib/duet', app.name, 'journal.ndjson'), 'utf8'),
      'deploy logs': await deployLogs(machine, app),
      'duet serve output': await journal(machine, 'duet'),
      status: JSON.stringify(await duetStatus(machine, app.name)),
      github: JSON.stringify(github.requests.map((request) => request.body)),
    };
    assert.match(places['deploy logs'], /\*\*\*/);
    for (const [where, text] of Object.entries(places)) {
      for (const value of VALUES) assert.ok(!text.includes(value), `${value} in ${where}`);
    }
  });
});

/** Every deploy log of the app, one after the other. */
async function deployLogs(machine: { root: string }, app: AppOnMachine): Promise<string> {
  const dir = join(machine.root, 'var/lib/duet', app.name, 'logs', 'deploys');
  const files = (await readdir(dir)).sort();
  return (await Promise.all(files.map((file) => readFile(join(dir, file), 'utf8')))).join('\n');
}

function configYaml(app: AppOnMachine, servePort: number, githubPort: number): string {
  return [
    '# duet.yml of the server suite (test/server/app-secrets.test.ts)',
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
    `  api_url: http://127.0.0.1:${githubPort}`,
    'apps:',
    `  ${app.name}:`,
    `    repo: duet-tests/${app.name}`,
    `    clone_url: file://${app.bareInMachine}`,
    `    listen: "127.0.0.1:${app.listen}"`,
    `    server_name: ${app.name}.test`,
    '    switch: socket',
    `    env_files: [${ENV_FILE}]`,
    '    secrets: [APP_SECRET]',
    '    build_env: [BUILD_TOKEN]',
    '    install: npm ci --no-audit --no-fund',
    // The build prints what it got, and leaves it for the app's /built to answer.
    '    build: \'echo "build sees token $BUILD_TOKEN and secret ${APP_SECRET:-unset}"; echo "token=$BUILD_TOKEN secret=${APP_SECRET:-unset}" > built.txt\'',
    '    release: \'echo "release sees $APP_SECRET"\'',
    `    start: 'echo "start sees $APP_SECRET"; if [ -e ${CRASH_FILE} ]; then sleep 1; exit 3; fi; exec node server.js'`,
    '    health: { path: /health, timeout_s: 30, watch_s: 1 }',
    '    standby: keep',
    '    drain_s: 0.5',
    '',
  ].join('\n');
}
