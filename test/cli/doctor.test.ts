import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { execa } from 'execa';
import { dirname, join } from 'node:path';
import { setupDuet, type CliResult, type DuetSetup } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { tempDir } from '../support/tmp.js';
import { installInto, runDuet, runTool, which } from '../setup/helpers.js';

const REPO = /^\/repos\/inu-appcenter\/cafeteria-server$/;
const SECRETS = { DUET_WEBHOOK_SECRET: 'webhook-secret-for-tests', DUET_GITHUB_TOKEN: 'ghp_doctortest' };
const ALL_CHECKS = [
  'config',
  'nginx installed',
  'nginx config test',
  'nginx include',
  'ports cafeteria',
  'state dir',
  'duet serve',
  'repo cafeteria',
  'github cafeteria',
  'package manager cafeteria',
  'webhook secret',
  'disk',
  'build priority',
  'build memory',
  'units',
];

interface Line {
  ok: boolean;
  text: string;
}

/** "✓ name: detail" / "✗ name: detail — fix" lines by check name. */
function lines(result: CliResult): Map<string, Line> {
  const out = new Map<string, Line>();
  for (const text of result.stdout.split('\n').filter(Boolean)) {
    const match = /^([✓✗]) ([^:]+): /.exec(text);
    assert.ok(match, `not a check line: ${text}`);
    out.set(match[2]!, { ok: match[1] === '✓', text });
  }
  return out;
}

function failing(result: CliResult): string[] {
  return [...lines(result)].filter(([, line]) => !line.ok).map(([name]) => name);
}

/**
 * A healthy server in miniature: a deployed app (blue runs behind a managed nginx), a GitHub
 * stand-in that says the token may write statuses, and the units `duet install --root` wrote,
 * enabled the way `systemctl enable` links them.
 */
async function healthySetup(
  t: Parameters<typeof setupDuet>[0],
): Promise<{ s: DuetSetup; root: string; github: GitHubServer; doctor(env?: Record<string, string>, args?: string[]): Promise<CliResult> }> {
  const github = await startGitHubServer(t);
  github.respondAlways('GET', REPO, {
    status: 200,
    body: {
      full_name: 'inu-appcenter/cafeteria-server',
      private: true,
      default_branch: 'main',
      permissions: { admin: false, maintain: false, push: true, triage: true, pull: true },
    },
    headers: { 'x-oauth-scopes': 'repo' },
  });
  // user: root -- the tests run as root and own the state dir; the default `duet` user does not exist here.
  const s = await setupDuet(t, { top: { user: 'root', github: `{ api_url: "${github.url}" }` } });
  const deployed = await s.duet(['deploy', '--ref', 'v1']);
  assert.equal(deployed.code, 0, deployed.stderr);

  const root = await tempDir(t, 'duet-doctor-root');
  await mkdir(join(root, dirname(s.configPath)), { recursive: true });
  await copyFile(s.configPath, join(root, s.configPath));
  await installInto(root, s.configPath);
  const systemctl = which('systemctl');
  if (systemctl) {
    const enabled = await runTool(systemctl, [`--root=${root}`, 'enable', 'duet.service', 'duet-bootup.service']);
    assert.equal(enabled.code, 0, enabled.output);
  } else {
    t.diagnostic('systemctl is not installed (apt-get install systemd): enabling by hand-made symlinks, as systemctl enable makes them');
    const wants = join(root, 'etc/systemd/system/multi-user.target.wants');
    await mkdir(wants, { recursive: true });
    for (const unit of ['duet.service', 'duet-bootup.service']) await symlink(`/etc/systemd/system/${unit}`, join(wants, unit));
  }
  return { s, root, github, doctor: (env = SECRETS, args = []) => s.duet(['doctor', '--root', root, ...args], env) };
}

test('doctor passes a healthy setup and fails exactly the broken check, with its fix', async (t) => {
  const { s, root, doctor } = await healthySetup(t);

  const healthy = await doctor();
  assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
  assert.deepEqual([...lines(healthy).keys()], ALL_CHECKS);
  assert.deepEqual(failing(healthy), []);
  assert.match(
    lines(healthy).get('ports cafeteria')!.text,
    new RegExp(`public ${s.listenPort} nginx, blue ${s.app.ports.blue} duet's blue \\(pid \\d+\\), green ${s.app.ports.green} free`),
  );
  assert.match(lines(healthy).get('github cafeteria')!.text, /classic token, scopes repo/);
  assert.match(lines(healthy).get('webhook secret')!.text, /set \(DUET_WEBHOOK_SECRET\)/);
  assert.match(lines(healthy).get('build priority')!.text, /SCHED_IDLE \(chrt\), I\/O class idle \(ionice\), oom_score_adj 1000 \(choom\)/);
  assert.match(lines(healthy).get('build memory')!.text, /no memory limit on builds .*GiB of RAM/, 'runner: process: no slice to limit them');
  assert.match(lines(healthy).get('package manager cafeteria')!.text, /✓ package manager cafeteria: npm \d+\.\d+\.\d+ \(.*blue\)/);
  assert.doesNotMatch(healthy.stdout, /webhook-secret-for-tests|ghp_doctortest/, 'secrets are never printed');

  const json = await doctor(SECRETS, ['--json']);
  assert.equal(json.code, 0);
  const parsed = JSON.parse(json.stdout) as Array<{ name: string; ok: boolean; detail: string; fix: string }>;
  assert.deepEqual(
    parsed.map((r) => r.name),
    ALL_CHECKS,
  );
  assert.ok(parsed.every((r) => r.ok && r.fix === '' && r.detail.length > 0));

  // The webhook secret is missing (the credentials file does not exist either).
  const noSecret = await doctor({ DUET_GITHUB_TOKEN: SECRETS.DUET_GITHUB_TOKEN });
  assert.equal(noSecret.code, 1);
  assert.deepEqual(failing(noSecret), ['webhook secret']);
  assert.match(lines(noSecret).get('webhook secret')!.text, /✗ webhook secret: not set: duet serve refuses to start without it — .*openssl rand/);

  // A stranger took green's port.
  const stranger = createServer();
  await new Promise<void>((resolve) => stranger.listen(s.app.ports.green, '127.0.0.1', resolve));
  try {
    const taken = await doctor();
    assert.equal(taken.code, 1);
    assert.deepEqual(failing(taken), ['ports cafeteria']);
    assert.match(
      lines(taken).get('ports cafeteria')!.text,
      new RegExp(`green port ${s.app.ports.green} is taken by pid ${process.pid} \\(node\\) — find it with \`ss -ltnp 'sport = :${s.app.ports.green}'\``),
    );
  } finally {
    await new Promise((resolve) => stranger.close(resolve));
  }

  // The repository belongs to another user: git's own words, and the fix for that cause.
  await t.test('a repository of another user', { skip: process.getuid?.() !== 0 && 'needs root (chown to nobody)' }, async () => {
    await execa('chown', ['-R', 'nobody', s.repo.bareDir]);
    try {
      const dubious = await doctor();
      assert.deepEqual(failing(dubious), ['repo cafeteria']);
      const line = lines(dubious).get('repo cafeteria')!.text;
      assert.match(line, /fatal: detected dubious ownership in repository at/);
      assert.doesNotMatch(line, /Please make sure you have the correct access rights/, "git's generic advice is left out");
      assert.match(line, /— the repository belongs to another user, and git refuses it: sudo git config --system --add safe\.directory /);
    } finally {
      await execa('chown', ['-R', `${process.getuid!()}`, s.repo.bareDir]);
    }
  });

  // nginx's config test fails (and so does the dump the include check reads).
  const broken = join(s.config.nginx.confDir, 'broken.conf');
  await writeFile(broken, 'this is not nginx;\n');
  try {
    const bad = await doctor();
    assert.equal(bad.code, 1);
    assert.deepEqual(failing(bad), ['nginx config test', 'nginx include']);
    assert.match(lines(bad).get('nginx config test')!.text, /fails: .*broken\.conf/);
  } finally {
    await rm(broken);
  }

  // The repository cannot be reached.
  const original = await readFile(s.configPath, 'utf8');
  await writeFile(s.configPath, original.replace(s.repo.bareUrl, 'file:///nonexistent/cafeteria.git'));
  try {
    const unreachable = await doctor();
    assert.equal(unreachable.code, 1);
    assert.deepEqual(failing(unreachable), ['repo cafeteria']);
    assert.match(
      lines(unreachable).get('repo cafeteria')!.text,
      /git ls-remote file:\/\/\/nonexistent\/cafeteria\.git fails: .* — check apps\.cafeteria\.clone_url/,
    );
  } finally {
    await writeFile(s.configPath, original);
  }

  // The units are installed but not enabled.
  await unlink(join(root, 'etc/systemd/system/multi-user.target.wants/duet.service'));
  const disabled = await doctor();
  assert.deepEqual(failing(disabled), ['units']);
  assert.match(lines(disabled).get('units')!.text, /duet\.service not enabled.* — sudo systemctl enable duet\.service/);
});

test('doctor: a missing GitHub token, or one without the status scope, fails the github line', async (t) => {
  const { doctor, github } = await healthySetup(t);
  const noToken = await doctor({ DUET_WEBHOOK_SECRET: SECRETS.DUET_WEBHOOK_SECRET });
  assert.equal(noToken.code, 1);
  assert.deepEqual(failing(noToken), ['github cafeteria']);
  assert.match(lines(noToken).get('github cafeteria')!.text, /no GitHub token .* — put a token with "Commit statuses: write" in /);

  github.respond('GET', REPO, {
    status: 200,
    body: { full_name: 'inu-appcenter/cafeteria-server', permissions: { push: true } },
    headers: { 'x-oauth-scopes': 'public_repo' },
  });
  const weak = await doctor();
  assert.deepEqual(failing(weak), ['github cafeteria']);
  assert.match(lines(weak).get('github cafeteria')!.text, /without the repo:status scope/);
  assert.deepEqual(
    github.requests.filter((r) => r.method !== 'GET'),
    [],
    'doctor never writes to GitHub',
  );
});

test('doctor: an invalid config is one failing line and exit 2', async (t) => {
  const dir = await tempDir(t, 'duet-doctor-bad');
  const file = join(dir, 'duet.yml');
  await writeFile(file, 'apps:\n  cafeteria:\n    clone_url: x\n    colour: blue\n');
  const result = await runDuet(['--config', file, 'doctor']);
  assert.equal(result.code, 2, result.stderr);
  const all = lines(result);
  assert.deepEqual([...all.keys()], ['config']);
  assert.match(all.get('config')!.text, /^✗ config: .*apps\.cafeteria: Unrecognized key: "colour" — fix /);
  const json = await runDuet(['--config', file, 'doctor', '--json']);
  assert.equal(json.code, 2);
  assert.equal((JSON.parse(json.stdout) as Array<{ ok: boolean }>)[0]!.ok, false);
});

test('doctor: each env_files path exists, is closed to others and sets the secrets; no value is printed', async (t) => {
  const dir = await tempDir(t, 'duet-doctor-env');
  const envFile = join(dir, 'cafeteria.env');
  const s = await setupDuet(t, { top: { user: 'root' }, app: { env_files: `[${envFile}]`, secrets: '[DATABASE_URL, SESSION_SECRET]' } });
  const envLine = async (): Promise<Line> => lines(await s.duet(['doctor'])).get('env files cafeteria')!;

  assert.match((await envLine()).text, new RegExp(`✗ env files cafeteria: ${envFile} does not exist — create it .*chmod 600`));
  await writeFile(envFile, 'DATABASE_URL=postgres://cafeteria:pw-of-the-db@localhost/cafeteria\n', { mode: 0o644 });
  await chmod(envFile, 0o644);
  assert.match((await envLine()).text, new RegExp(`✗ env files cafeteria: ${envFile} can be read by others \\(mode 0644\\) — sudo chmod 600`));
  await chmod(envFile, 0o600);
  const missing = await envLine();
  assert.match(missing.text, /✗ env files cafeteria: SESSION_SECRET \(secrets\) not set by/);
  await writeFile(envFile, 'DATABASE_URL=postgres://cafeteria:pw-of-the-db@localhost/cafeteria\nSESSION_SECRET=a-long-session-secret\n');
  const fine = await s.duet(['doctor']);
  assert.match(lines(fine).get('env files cafeteria')!.text, /✓ env files cafeteria: 1 file, root's, mode 0600 or closer, set: DATABASE_URL, SESSION_SECRET/);
  assert.doesNotMatch(fine.stdout + fine.stderr, /pw-of-the-db|a-long-session-secret/, 'no value is printed');

  await s.succeed(['deploy', '--ref', 'v1']);
  assert.ok((await envLine()).ok, 'the live color runs with the files as they are');
  await writeFile(envFile, 'DATABASE_URL=postgres://cafeteria:pw-of-the-db@localhost/cafeteria\nSESSION_SECRET=a-rotated-session-secret\n');
  assert.match((await envLine()).text, /✗ env files cafeteria: environment changed since start: restart pending .* — duet restart cafeteria/);
  await s.succeed(['restart']);
  assert.ok((await envLine()).ok, 'restarted: nothing pending');
});

test('doctor: each notify target has its files, closed to others, a URL and a signing secret that parse; no value is printed', async (t) => {
  const dir = await tempDir(t, 'duet-doctor-notify');
  const slackUrl = join(dir, 'slack.url');
  const hookUrl = join(dir, 'hook.url');
  const hookSecret = join(dir, 'hook.secret');
  const s = await setupDuet(t, {
    top: {
      user: 'root',
      notify: `[{ format: slack, url_file: ${slackUrl} }, { format: webhook, url_file: ${hookUrl}, secret_file: ${hookSecret}, on: [failed], apps: [cafeteria] }]`,
    },
  });
  const doctor = async (): Promise<[Line, Line, CliResult]> => {
    const result = await s.duet(['doctor']);
    const found = lines(result);
    return [found.get('notify[0] slack')!, found.get('notify[1] webhook')!, result];
  };

  let [slack, hook] = await doctor();
  assert.match(slack.text, new RegExp(`✗ notify\\[0\\] slack: ${slackUrl} does not exist — create it \\(the URL on one line\\).*chmod 600`));
  assert.match(hook.text, new RegExp(`✗ notify\\[1\\] webhook: ${hookUrl} does not exist`));

  await writeFile(slackUrl, 'hooks.slack.com/services/T0/B0/secret-part-of-the-url\n', { mode: 0o600 });
  await writeFile(hookUrl, 'https://ops.example.com/duet-events/secret-path\n', { mode: 0o644 });
  await chmod(hookUrl, 0o644);
  [slack, hook] = await doctor();
  assert.match(slack.text, new RegExp(`✗ notify\\[0\\] slack: ${slackUrl} does not hold an http\\(s\\) URL — write the URL alone on one line`));
  assert.match(hook.text, new RegExp(`✗ notify\\[1\\] webhook: ${hookUrl} can be read by others \\(mode 0644\\) — sudo chmod 600`));

  await writeFile(slackUrl, 'https://hooks.slack.com/services/T0/B0/secret-part-of-the-url\n');
  await chmod(hookUrl, 0o600);
  await writeFile(hookSecret, 'not-a-key\n', { mode: 0o600 });
  [slack, hook] = await doctor();
  assert.match(slack.text, /✓ notify\[0\] slack: posts to hooks\.slack\.com on failed, errored, switched_back, failover of every app/);
  assert.match(hook.text, new RegExp(`✗ notify\\[1\\] webhook: ${hookSecret} does not hold a Standard Webhooks secret \\(no whsec_ prefix\\) — write whsec_`));

  await writeFile(hookSecret, `whsec_${Buffer.alloc(32, 7).toString('base64')}\n`);
  const [, signed, result] = await doctor();
  assert.match(signed.text, /✓ notify\[1\] webhook: posts to ops\.example\.com on failed of cafeteria, signed/);
  assert.doesNotMatch(result.stdout + result.stderr, /secret-part-of-the-url|secret-path|whsec_/, 'no URL path nor secret is printed');
});
