import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';

const SECRET = 'hunter2-session-secret-0042';

/** v1 runs a postinstall that prints the secret (a real npm one); v2 prints it and crashes at start. */
const PACKAGE_JSON = `${JSON.stringify({ name: 'sample-app', version: '1.0.0', private: true, scripts: { start: 'node server.js', postinstall: 'echo "postinstall sees $SESSION_SECRET"' } }, null, 2)}\n`;

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

  await writeFile(envFile, `# the app's secrets\nSESSION_SECRET="${SECRET}"\nSHORT=abc\n`);
  const first = await setup.succeed(['deploy', '--ref', 'v1']);
  assert.equal((await setup.get('/env/SESSION_SECRET')).body, SECRET, 'the app has the value');
  assert.equal((await setup.get('/env/SHORT')).body, 'abc');
  let seen = await recorded(setup);
  assert.match(seen.logs, /postinstall sees \*\*\*/, 'the postinstall got it (build_env) and printed it, masked');

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
