import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { mountTmpfsOver } from '../support/tmpfs.js';

/** After a failed deploy, v1 on blue must still serve and green must not be left running. */
async function assertOldColorStillServes(setup: DuetSetup): Promise<void> {
  const page = await setup.get('/');
  assert.equal(page.status, 200);
  assert.match(page.body, /cafeteria v1/);
  assert.equal(page.color, 'blue');
  assert.equal((await setup.duet(['enabled-instance'])).stdout, 'blue\n');
  assert.equal((await setup.duet(['pid', 'green'])).code, 1, 'the idle color was stopped after the failure');
}

async function deployFailing(setup: DuetSetup): Promise<string> {
  await setup.succeed(['deploy', '--ref', 'v1']);
  const failed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(failed.code, 1, failed.stderr);
  await assertOldColorStillServes(setup);
  const history = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.equal(history[0].outcome, 'failed');
  return failed.stderr;
}

const failingInstall = 'if [ -f fail-install ]; then echo "npm ERR! simulated install failure" >&2; exit 1; fi; mkdir -p node_modules';

test('install exits 1: the error names the step, the command, its exit code and its output', async (t) => {
  const setup = await setupDuet(t, {
    app: { install: `'${failingInstall}'` },
    tags: {
      v1: {},
      // A new lockfile: with an unchanged one the install would be skipped (or copied) instead.
      v2: { VERSION: 'v2\n', 'fail-install': '', 'package-lock.json': '{"name":"sample-app","lockfileVersion":3,"packages":{}}\n' },
    },
  });
  const stderr = await deployFailing(setup);
  assert.match(stderr, /install: .*exited with code 1/);
  assert.match(stderr, /npm ERR! simulated install failure/);
  // The terminal also showed the output as it came: the error itself must carry its end, for
  // history, status, the dashboard and GitHub, which never saw that stream.
  const [last] = JSON.parse((await setup.duet(['history', '--json'])).stdout);
  assert.equal(last.failedStep, 'install');
  assert.match(last.error, /exited with code 1[\s\S]*npm ERR! simulated install failure/);
});

test('the app crashes at start: reported quickly, not after the health timeout', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 60 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashOnStart":true}' } },
  });
  const started = Date.now();
  const stderr = await deployFailing(setup);
  assert.match(stderr, /health: green exited before it became healthy/);
  assert.match(stderr, /sample-app: crashing on start/, 'the error shows the end of the instance log');
  assert.ok(Date.now() - started < 30_000, 'a dead process is not waited on for health.timeout_s');
});

test('health never passes: the deploy fails after health.timeout_s with the last answer', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 1.5 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"healthStatus":503}' } },
  });
  const stderr = await deployFailing(setup);
  assert.match(stderr, /green did not become healthy within 1.5s: GET \/health last answered HTTP 503/);
});

test('health times out: an app too slow to listen fails the deploy', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 1 }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"startDelayMs":5000}' } },
  });
  const stderr = await deployFailing(setup);
  assert.match(stderr, /did not become healthy within 1s: GET \/health last answered ECONNREFUSED/);
});

test('nginx config test fails: the previous file is restored and the old color keeps serving', async (t) => {
  const setup = await setupDuet(t);
  await setup.succeed(['deploy', '--ref', 'v1']);
  // Someone drops a broken file next to duet's: nginx -t now fails for any change.
  await writeFile(join(setup.config.nginx.confDir, 'broken.conf'), 'server { listen 1.2.3.4:99999; }\n');
  const failed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /switch: /);
  assert.match(failed.stderr, /invalid port|host not found|99999/);
  await assertOldColorStillServes(setup);
});

test('an app that ignores SIGTERM is killed after stop_timeout_s when it is retired', async (t) => {
  const setup = await setupDuet(t, {
    standby: 'stop',
    tags: { v1: { 'behaviour.json': '{"ignoreSigterm":true}' }, v2: { VERSION: 'v2\n', 'behaviour.json': '{}' } },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const deployed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.match(deployed.stderr, /retire: done .*blue killed/);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal((await setup.duet(['pid', 'blue'])).code, 1);
});

test('a build tool that is not installed (exit 127): the error names it and the likely cause', async (t) => {
  // Not tsc: npm test puts node_modules/.bin, where this project's tsc is, on PATH.
  const setup = await setupDuet(t, { app: { build: "'no-such-build-tool -p .'" } });
  const failed = await setup.duet(['deploy', '--ref', 'v1']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /build: `no-such-build-tool -p \.` exited with code 127/);
  assert.match(failed.stderr, /hint: `no-such-build-tool` was not found \(exit 127\): a tool the build needs that package.json does not list/);
});

test('a health check that gets a redirect says so, and where to point health.path', async (t) => {
  const setup = await setupDuet(t, {
    app: { health: '{ path: /health, timeout_s: 1 }' },
    tags: { v1: { 'behaviour.json': '{"healthRedirect":"https://cafeteria.example.com/health"}' } },
  });
  const failed = await setup.duet(['deploy', '--ref', 'v1']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /GET \/health last answered HTTP 301 to https:\/\/cafeteria\.example\.com\/health/);
  assert.match(failed.stderr, /hint: a redirect is not healthy: point health\.path at a route that answers 2xx/);
});

test('install scripts run for every commit: a changed postinstall and a failing preinstall with an unchanged lockfile (real npm ci)', async (t) => {
  const pkg = (scripts: Record<string, string>) =>
    `${JSON.stringify({ name: 'sample-app', version: '1.0.0', private: true, scripts: { start: 'node server.js', ...scripts } }, null, 2)}\n`;
  const setup = await setupDuet(t, {
    app: { install: "'npm ci --no-audit --no-fund --offline'" },
    tags: {
      v1: { 'package.json': pkg({ postinstall: 'echo v1 > postinstall-ran' }) },
      v2: { VERSION: 'v2\n', 'package.json': pkg({ postinstall: 'echo v2 > postinstall-ran' }) },
      v3: { VERSION: 'v3\n', 'package.json': pkg({ preinstall: 'echo preinstall refuses this machine >&2; exit 1' }) },
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const v2 = await setup.succeed(['deploy', '--ref', 'v2']);
  assert.equal(await readFile(join(setup.app.paths.checkout.green, 'postinstall-ran'), 'utf8'), 'v2\n', "v2's own postinstall ran");
  assert.match((await setup.duet(['logs'])).stdout, /not using the install cache: package\.json runs postinstall at install time/);
  assert.ok(v2);
  const failed = await setup.duet(['deploy', '--ref', 'v3']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /update: .*install: `npm ci[^`]*` exited with code 1|install: `npm ci[^`]*` exited with code 1/);
  assert.match(failed.stderr, /preinstall refuses this machine/);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
});

test(
  'a deploy log the disk no longer takes does not stop the deploy (a chatty install, a full disk)',
  { skip: process.getuid?.() !== 0 && 'needs root (mounts a tmpfs)' },
  async (t) => {
    const setup = await setupDuet(t, { app: { install: "'mkdir -p node_modules && yes duet-install-output | head -c 300000'" } });
    await mountTmpfsOver(setup, setup.app.paths.deployLogs, '64k');
    const result = await setup.duet(['deploy', '--ref', 'v1']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /the deploy log .* is incomplete: ENOSPC/);
    assert.match((await setup.get('/')).body, /cafeteria v1/);
  },
);
