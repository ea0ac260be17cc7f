import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startLoad } from '../support/load.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';
import { tempDir } from '../support/tmp.js';

const SECRET = 'hunter2-session-secret-0042';

/**
 * v1 runs a postinstall that prints the secret (a real npm one) and APP_ONLY, a value of the env
 * file that build_env does not name; v2 prints the secret and crashes at start.
 */
const PACKAGE_JSON = `${JSON.stringify({ name: 'sample-app', version: '1.0.0', private: true, scripts: { start: 'node server.js', postinstall: 'echo "postinstall sees $SESSION_SECRET, and ${APP_ONLY:-no APP_ONLY}"' } }, null, 2)}\n`;

async function secretsSetup(t: Parameters<typeof setupDuet>[0], envFileText: string): Promise<{ setup: DuetSetup; envFile: string }> {
  const envFile = join(await tempDir(t, 'duet-secrets'), 'cafeteria.env');
  await writeFile(envFile, envFileText, { mode: 0o600 });
  const setup = await setupDuet(t, {
    app: {
      install: "'npm ci --offline --no-audit --no-fund'",
      start: `'echo "app starts with $SESSION_SECRET"; exec node server.js'`,
      env_files: `[${envFile}]`,
      secrets: '[SESSION_SECRET]',
      build_env: '[SESSION_SECRET]',
    },
    tags: { v1: { 'package.json': PACKAGE_JSON }, v2: { VERSION: 'v2\n', 'behaviour.json': '{ "crashOnStart": true }' } },
  });
  return { setup, envFile };
}

/** Every deploy log and the journal, as one text. */
async function recorded(setup: DuetSetup): Promise<{ logs: string; journal: string }> {
  const dir = setup.app.paths.deployLogs;
  const logs = await Promise.all((await readdir(dir)).map((name) => readFile(join(dir, name), 'utf8')));
  return { logs: logs.join('\n'), journal: await readFile(setup.app.paths.journal, 'utf8') };
}

test('env_files: refused when others can read it, a missing secret fails at update by name, the app and its postinstall get the value, and it is masked everywhere duet writes', async (t) => {
  const { setup, envFile } = await secretsSetup(t, `SHORT=abc\n`);

  await chmod(envFile, 0o640);
  const open = await setup.duet(['deploy', '--ref', 'v1']);
  assert.equal(open.code, 1, open.stderr);
  assert.match(open.stderr, /can be read by others \(mode 0640\)/);
  assert.match(open.stderr, /chmod 600/);

  await chmod(envFile, 0o600);
  const missing = await setup.duet(['deploy', '--ref', 'v1']);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /needs SESSION_SECRET/);
  assert.match(missing.stderr, /update/);

  await writeFile(envFile, `# the app's secrets\nSESSION_SECRET="${SECRET}"\nSHORT=abc\nAPP_ONLY=for-the-app-process-only\n`);
  const first = await setup.succeed(['deploy', '--ref', 'v1']);
  assert.equal((await setup.get('/env/SESSION_SECRET')).body, SECRET, 'the app has the value');
  assert.equal((await setup.get('/env/SHORT')).body, 'abc');
  let seen = await recorded(setup);
  assert.match(seen.logs, /postinstall sees \*\*\*, and no APP_ONLY/, 'the postinstall got the build_env value, printed masked, and no other');
  assert.equal((await setup.get('/env/APP_ONLY')).body, 'for-the-app-process-only', 'the app has every value');

  // v2 prints the secret and crashes: the deploy's error quotes its output.
  const crashed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(crashed.code, 1);
  assert.match(crashed.stderr, /app starts with \*\*\*/, 'the quoted output is masked');
  seen = await recorded(setup);
  assert.match(seen.journal, /app starts with \*\*\*/);
  for (const [where, text] of Object.entries({ ...seen, firstOutput: first.stdout + first.stderr, crashedOutput: crashed.stdout + crashed.stderr })) {
    assert.ok(!text.includes(SECRET), `the secret is not in ${where}`);
  }
  assert.ok((await readFile(setup.app.paths.instanceLog.green, 'utf8')).includes(SECRET), "(control: the app's own log has what it printed)");
});

test('a changed secret goes in without downtime: status says a restart is pending, duet restart and POST /apps/:app/restart apply it under load; duet serve never holds the value', async (t) => {
  const port = await freePort();
  const envFile = join(await tempDir(t, 'duet-secrets'), 'cafeteria.env');
  await writeFile(envFile, `SESSION_SECRET=${SECRET}\n`, { mode: 0o600 });
  const setup = await setupDuet(t, {
    app: { start: `'echo "app starts with $SESSION_SECRET"; exec node server.js'`, env_files: `[${envFile}]`, secrets: '[SESSION_SECRET]' },
    top: { server: `{ listen: "127.0.0.1:${port}" }` },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const serve = await startServe(t, setup.configPath, port);

  const NEW = 'rotated-session-secret-0043';
  await writeFile(envFile, `SESSION_SECRET=${NEW}\n`);
  assert.match((await setup.succeed(['status'])).stdout, /environment changed since start: restart pending/);
  const load = startLoad(setup.listenPort, { concurrency: 4, keepAlive: false });
  try {
    const restarted = await setup.succeed(['restart']);
    assert.match(restarted.stdout, /restarted on green/);
    assert.equal((await setup.get('/env/SESSION_SECRET')).body, NEW, 'the app sees the new value');
    assert.equal((await setup.get('/')).color, 'green', 'the live commit went into the idle color');

    const THIRD = 'third-session-secret-0044';
    await writeFile(envFile, `SESSION_SECRET=${THIRD}\n`);
    const response = await fetch(`${serve.url}/apps/cafeteria/restart`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(response.status, 202);
    const id = ((await response.json()) as { deploy: string }).deploy;
    const record = await pollUntil(
      async () => {
        const { body } = await getJson(`${serve.url}/deploys/${id}`);
        return ['succeeded', 'failed', 'errored'].includes(body?.state) ? body : undefined;
      },
      { timeoutMs: 30_000, maxIntervalMs: 200 },
    );
    assert.equal(record?.state, 'succeeded', `${JSON.stringify(record)}\n${serve.output()}`);
    assert.equal((await setup.get('/env/SESSION_SECRET')).body, THIRD);
    assert.equal((await setup.get('/')).color, 'blue');
  } finally {
    await load.stop();
  }
  const report = load.report;
  assert.equal(report.errors + report.non2xx, 0, `failed requests: ${report.errors} errors, ${report.non2xx} non-2xx, first: ${report.firstError}`);
  assert.ok(report.requests > 50, `enough load to mean something (${report.requests})`);
  const status = JSON.parse((await setup.succeed(['status', '--json'])).stdout);
  assert.equal(status.colors.blue.configChanged, null, 'the live color runs with the env file as it is');
  assert.equal(status.colors.green.configChanged, 'environment', 'the warm one still has the one before (a rollback restarts it)');

  const serveEnviron = await readFile(`/proc/${serve.child.pid}/environ`, 'utf8');
  const seen = await recorded(setup);
  for (const [where, text] of Object.entries({ ...seen, serveEnviron, serveLog: serve.output() })) {
    for (const value of [SECRET, NEW, 'third-session-secret-0044']) assert.ok(!text.includes(value), `${value} is not in ${where}`);
  }
});
