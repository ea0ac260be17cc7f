import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, chmod, appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { execa } from 'execa';
import { parseConfig } from '../../src/config/load.js';
import { cliPath } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';
import { configText, installInto, runDuet, snapshot, writeConfig } from './helpers.js';

const mode = async (path: string): Promise<string> => ((await stat(path)).mode & 0o7777).toString(8);

test('install --root twice: the files and modes of a server, and the second run changes nothing', async (t) => {
  const root = await tempDir(t, 'duet-install');
  const first = await installInto(root);

  const expected: Record<string, string> = {
    '/etc/duet': '750',
    '/etc/duet/duet.yml': '640',
    '/etc/duet/credentials': '700',
    '/etc/duet/nginx.d': '750',
    '/var/lib/duet': '750',
    '/var/lib/duet/myapp/logs': '750',
    '/etc/nginx/conf.d/duet.conf': '644',
    '/etc/sudoers.d/duet': '440',
    '/etc/systemd/system/duet.service': '644',
    '/etc/systemd/system/duet-bootup.service': '644',
    // The starter runs the apps as duet-app: system units, the step socket, the polkit rule.
    '/etc/systemd/system/duet-app@.service': '644',
    '/etc/systemd/system/duet-step.socket': '644',
    '/etc/polkit-1/rules.d/50-duet.rules': '644',
    '/var/lib/duet-app': '700',
  };
  for (const [path, want] of Object.entries(expected)) assert.equal(await mode(join(root, path)), want, path);
  await assert.rejects(stat(join(root, 'etc/systemd/user/duet-app@.service')), 'no user units with app_user');
  await assert.rejects(stat(join(root, 'var/lib/systemd/linger/duet')), 'no lingering with app_user');

  const starter = await readFile(join(root, 'etc/duet/duet.yml'), 'utf8');
  assert.doesNotThrow(() => parseConfig(starter, 'starter'), 'the starter config is valid as written');
  const site = await readFile(join(root, 'etc/nginx/conf.d/duet.conf'), 'utf8');
  assert.match(site, /^include \/etc\/duet\/nginx\.d\/\*\.conf;$/m);
  const sudoers = await readFile(join(root, 'etc/sudoers.d/duet'), 'utf8');
  assert.match(sudoers, /^duet ALL=\(root\) NOPASSWD: \/usr\/sbin\/nginx -t, \\\n {4}\/usr\/sbin\/nginx -s reload$/m, 'exactly test_cmd and reload_cmd');

  const unit = await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8');
  for (const line of [
    'User=duet',
    'Restart=on-failure',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'ReadWritePaths=/var/lib/duet /etc/duet/nginx.d',
    'Wants=duet-step.socket',
    'LoadCredential=webhook-secret:/etc/duet/credentials/webhook-secret',
    'Environment=DUET_WEBHOOK_SECRET_FILE=%d/webhook-secret',
  ]) {
    assert.ok(unit.split('\n').includes(line), `duet.service has ${line}`);
  }
  assert.match(
    unit,
    /^ExecStart=\S+node\S* --max-semi-space-size=1 --single-threaded-gc --expose-gc \S+\/dist\/bin\/duet\.mjs --config \/etc\/duet\/duet\.yml serve$/m,
  );
  const bootup = await readFile(join(root, 'etc/systemd/system/duet-bootup.service'), 'utf8');
  assert.match(bootup, /^Type=oneshot$/m);
  assert.match(bootup, /^After=network-online\.target nginx\.service$/m);
  assert.match(bootup, /^Before=duet\.service$/m);
  assert.match(bootup, / bootup$/m);

  // Under --root nothing outside the tree is touched: the commands are listed, not run.
  assert.match(first.stdout, /skip +useradd --system --user-group --home-dir \/var\/lib\/duet --no-create-home --shell \/usr\/sbin\/nologin duet/);
  assert.match(first.stdout, /skip +useradd --system --gid duet --home-dir \/var\/lib\/duet-app --no-create-home --shell \/usr\/sbin\/nologin duet-app/);
  assert.match(first.stdout, /skip +chown duet:duet \/var\/lib\/duet /);
  assert.match(first.stdout, /skip +systemctl daemon-reload/);
  assert.match(first.stdout, /skip +systemctl enable duet\.service duet-bootup\.service/);
  assert.match(first.stdout, /skip +sudo -n \/usr\/sbin\/nginx -t/);
  assert.match(first.stdout, /Content type: +application\/json/);
  assert.match(first.stdout, /Which events: .*Pushes/);

  const before = await snapshot(root);
  const second = await installInto(root);
  assert.deepEqual(await snapshot(root), before, 'no file written, no mode changed, no inode replaced');
  assert.doesNotMatch(second.stdout, /^ {2}(create|update|chmod|chown|remove|run) /m, second.stdout);
  assert.match(second.stdout, /^nothing to change/m);
  assert.doesNotMatch(second.stdout, /daemon-reload/, 'no unit changed: no reload');
});

test('--dry-run prints diffs and commands and writes nothing; a real run then repairs drift', async (t) => {
  const root = await tempDir(t, 'duet-dry');
  const dry = await installInto(root, undefined, ['--dry-run']);
  assert.deepEqual(await readdir(root), [], 'nothing written');
  assert.match(dry.stdout, /dry run: nothing is changed/);
  assert.match(dry.stdout, /^ +\+\+\+ \/etc\/systemd\/system\/duet\.service$/m);
  assert.match(dry.stdout, /^ +\+ExecStart=.* serve$/m);
  assert.match(dry.stdout, /^ +\+duet ALL=\(root\) NOPASSWD: /m);
  assert.match(dry.stdout, /would be made/);

  await installInto(root);
  const unitPath = join(root, 'etc/systemd/system/duet.service');
  const unit = await readFile(unitPath, 'utf8');
  await appendFile(unitPath, 'ExecStartPre=/bin/true\n');
  await chmod(join(root, 'etc/duet/credentials'), 0o755);
  const drift = await installInto(root, undefined, ['--dry-run']);
  assert.match(drift.stdout, /update +\/etc\/systemd\/system\/duet\.service/);
  assert.match(drift.stdout, /^ +-ExecStartPre=\/bin\/true$/m);
  assert.match(drift.stdout, /chmod +\/etc\/duet\/credentials +0755 -> 0700/);
  assert.match(drift.stdout, /skip +systemctl daemon-reload/);
  assert.notEqual(await readFile(unitPath, 'utf8'), unit, 'the dry run left the drift alone');

  await installInto(root);
  assert.equal(await readFile(unitPath, 'utf8'), unit);
  assert.equal(await mode(join(root, 'etc/duet/credentials')), '700');
});

test('an existing duet.yml is kept; optional secrets are loaded once their files exist', async (t) => {
  const root = await tempDir(t, 'duet-keep');
  const config = configText();
  await writeConfig(root, config);
  await installInto(root);
  assert.equal(await readFile(join(root, 'etc/duet/duet.yml'), 'utf8'), config);
  const unitPath = join(root, 'etc/systemd/system/duet.service');
  assert.doesNotMatch(await readFile(unitPath, 'utf8'), /github-token/);

  await writeFile(join(root, 'etc/duet/credentials/github-token'), 'ghp_x\n', { mode: 0o600 });
  const again = await installInto(root);
  assert.match(again.stdout, /update +\/etc\/systemd\/system\/duet\.service/);
  const unit = await readFile(unitPath, 'utf8');
  assert.match(unit, /^LoadCredential=github-token:\/etc\/duet\/credentials\/github-token$/m);
  assert.match(unit, /^Environment=DUET_GITHUB_TOKEN_FILE=%d\/github-token$/m);
  assert.doesNotMatch(unit, /api-token/);
});

test('switch: socket needs no reload: no sudoers, the strict sandbox, the app conf in place', async (t) => {
  const root = await tempDir(t, 'duet-socket');
  await installInto(root);
  assert.ok((await readdir(join(root, 'etc/sudoers.d'))).includes('duet'));

  await writeConfig(root, configText({ top: ['nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket', 'listen: 8080'] }));
  const result = await installInto(root);
  assert.match(result.stdout, /remove +\/etc\/sudoers\.d\/duet/);
  assert.deepEqual(await readdir(join(root, 'etc/sudoers.d')), []);
  const unit = await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8');
  for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'CapabilityBoundingSet=']) assert.ok(unit.split('\n').includes(line), line);
  assert.equal(await mode(join(root, 'var/lib/duet')), '711', 'nginx workers pass through to the sockets');
  const conf = await readFile(join(root, 'etc/duet/nginx.d/duet-cafeteria.conf'), 'utf8');
  assert.match(conf, /server unix:\/var\/lib\/duet\/cafeteria\/sockets\/live\.sock max_fails=0;/);
  assert.match(result.stdout, /skip +nginx -t /, 'install itself tests and reloads once, as root, for the new files');
});

test('runner: systemd installs the app unit as a user unit and turns lingering on; no sudo', async (t) => {
  const root = await tempDir(t, 'duet-runner');
  await writeConfig(root, configText({ name: 'my-app', top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket'] }));
  const result = await installInto(root);
  const template = await readFile(join(root, 'etc/systemd/user/duet-app@.service'), 'utf8');
  assert.doesNotMatch(template, /^User=/m, "the service user's own systemd runs it");
  assert.match(template, /^WorkingDirectory=\/var\/lib\/duet\/%I$/m);
  assert.match(template, /^EnvironmentFile=\/var\/lib\/duet\/%I\.env$/m);
  assert.match(template, /^ExecStart=\/bin\/sh -c \$\{DUET_START\}$/m);
  assert.match(template, /^Restart=on-failure$/m);
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-app@.service')), 'not a system unit');
  assert.equal(await readFile(join(root, 'var/lib/systemd/linger/duet'), 'utf8'), '', 'what loginctl enable-linger writes');
  assert.match(result.stdout, /skip +loginctl enable-linger duet/);
  const unit = await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8');
  assert.doesNotMatch(unit, /KillMode/, 'the instances live in their own units');
  assert.match(unit, /^ProtectHome=read-only$/m, 'systemctl --user reaches the manager under /run/user');
  assert.match(unit, /^NoNewPrivileges=yes$/m, 'no sudo, so the full sandbox');
  await assert.rejects(stat(join(root, 'etc/sudoers.d/duet')), 'socket mode and runner: systemd need nothing as root');
});

test('app_user: the app unit becomes a system unit run as that user, started through a polkit rule for those units only; no lingering', async (t) => {
  const root = await tempDir(t, 'duet-app-user');
  const top = ['runner: systemd', 'app_user: duet-app', 'nginx: { conf_dir: /etc/duet/nginx.d }'];
  await writeConfig(root, configText({ name: 'my-app', top, app: ['switch: socket'] }));
  const result = await installInto(root);
  const template = await readFile(join(root, 'etc/systemd/system/duet-app@.service'), 'utf8');
  assert.match(template, /^User=duet-app$/m);
  assert.match(template, /^Group=duet$/m, "duet's group: it reads the checkout");
  assert.match(template, /^UMask=0011$/m, 'socket mode: nginx can connect to a socket duet cannot chmod');
  for (const line of ['NoNewPrivileges=yes', 'PrivateTmp=yes', 'ProtectSystem=full', 'ProtectHome=yes']) assert.match(template, new RegExp(`^${line}$`, 'm'));
  assert.doesNotMatch(template, /\{\{/, 'every placeholder rendered');
  await assert.rejects(stat(join(root, 'etc/systemd/user/duet-app@.service')), 'not a user unit');
  await assert.rejects(stat(join(root, 'var/lib/systemd/linger/duet')), "the user's own systemd is not needed");
  const rule = await readFile(join(root, 'etc/polkit-1/rules.d/50-duet.rules'), 'utf8');
  assert.match(rule, /subject\.user !== "duet"/);
  assert.match(rule, /org\.freedesktop\.systemd1\.manage-units/);
  assert.equal(await mode(join(root, 'etc/polkit-1/rules.d/50-duet.rules')), '644');
  assert.equal(await mode(join(root, 'var/lib/duet-app')), '700', "the app user's home, its own");
  assert.match(result.stdout, /skip +useradd --system --gid duet --home-dir \/var\/lib\/duet-app --no-create-home --shell \/usr\/sbin\/nologin duet-app/);
  assert.match(result.stdout, /skip +usermod --append --groups systemd-journal duet/);
  assert.match(template, /^ReadOnlyPaths=\/var\/lib\/duet$/m, "the running app changes nothing of duet's");
  assert.match(template, /^ReadWritePaths=-\/var\/lib\/duet\/my-app\/sockets$/m, '...but its socket');
  const unit = await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8');
  assert.match(unit, /^ProtectHome=yes$/m, 'no /run/user to reach');
  assert.match(unit, /^Wants=duet-step\.socket$/m, 'duet serve brings up the step socket');
  // The installs and builds: a socket only duet may connect to, a runner per connection as the app user.
  const socket = await readFile(join(root, 'etc/systemd/system/duet-step.socket'), 'utf8');
  for (const line of ['ListenStream=/run/duet/step.sock', 'SocketUser=duet', 'SocketMode=0600', 'Accept=yes'])
    assert.match(socket, new RegExp(`^${line}$`, 'm'));
  const runner = await readFile(join(root, 'etc/systemd/system/duet-step@.service'), 'utf8');
  for (const line of ['User=duet-app', 'Group=duet', 'UMask=0002', 'StandardInput=socket', 'StandardOutput=socket', 'NoNewPrivileges=yes']) {
    assert.match(runner, new RegExp(`^${line}$`, 'm'));
  }
  assert.match(runner, /^ExecStart=\S+ \S+duet\.mjs step-runner$/m);

  // The rule, run as polkit runs it (plain ES5 given a `polkit` object), in a context of its own.
  type Rule = (action: { id: string; lookup: (key: string) => string | undefined }, subject: { user: string }) => string;
  const rules: Rule[] = [];
  runInNewContext(rule, { polkit: { Result: { YES: 'yes', NOT_HANDLED: 'not handled' }, addRule: (f: Rule) => rules.push(f) } });
  assert.equal(rules.length, 1);
  const ask = (user: string, unit: string, verb: string, id = 'org.freedesktop.systemd1.manage-units'): string =>
    rules[0]!({ id, lookup: (key: string) => ({ unit, verb })[key] }, { user });
  assert.equal(ask('duet', 'duet-app@my\\x2dapp-green.service', 'start'), 'yes');
  assert.equal(ask('duet', 'duet-app@cafeteria-blue.service', 'stop'), 'yes');
  assert.equal(ask('duet', 'duet-app@cafeteria-blue.service', 'restart'), 'yes');
  assert.equal(ask('duet', 'nginx.service', 'start'), 'not handled', 'no other unit');
  assert.equal(ask('duet', 'duet.service', 'stop'), 'not handled');
  assert.equal(ask('duet', 'duet-app@cafeteria-red.service', 'start'), 'not handled');
  assert.equal(ask('duet', 'duet-app@cafeteria-blue.service', 'enable'), 'not handled', 'no other verb');
  assert.equal(ask('duet-app', 'duet-app@cafeteria-blue.service', 'start'), 'not handled', 'no other user');
  assert.equal(ask('duet', 'duet-app@cafeteria-blue.service', 'start', 'org.freedesktop.systemd1.manage-unit-files'), 'not handled');

  // Back to the service user's own systemd: the system unit and the rule go.
  await writeConfig(root, configText({ name: 'my-app', top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket'] }));
  await installInto(root);
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-app@.service')));
  await assert.rejects(stat(join(root, 'etc/polkit-1/rules.d/50-duet.rules')));
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-step.socket')), 'no step socket without app_user');
  assert.match(await readFile(join(root, 'etc/systemd/user/duet-app@.service'), 'utf8'), /^NoNewPrivileges=yes$/m);
});

test("app_user with env_files: a drop-in per color and a step socket of the app's own hand the root-only files to systemd, whose ExecStartPre= names a missing secret; they go with env_files", async (t) => {
  const root = await tempDir(t, 'duet-env-dropin');
  const top = ['runner: systemd', 'app_user: duet-app', 'nginx: { conf_dir: /etc/duet/nginx.d }'];
  const app = ['switch: socket', 'env_files: [/etc/duet/env/my-app.env]', 'secrets: [DATABASE_URL, SESSION_SECRET]'];
  await writeConfig(root, configText({ name: 'my-app', top, app }));
  await installInto(root);
  const dropIn = await readFile(join(root, 'etc/systemd/system/duet-app@my\\x2dapp-green.service.d/env-files.conf'), 'utf8');
  const lines = dropIn.split('\n');
  const files = lines.filter((line) => line.startsWith('EnvironmentFile='));
  assert.deepEqual(
    files,
    ['EnvironmentFile=', 'EnvironmentFile=/etc/duet/env/my-app.env', 'EnvironmentFile=/var/lib/duet/%I.env'],
    "reset, the app's files, then duet's own last",
  );
  const pre = lines.find((line) => line.startsWith('ExecStartPre='))!;
  // Run as systemd would: `$$` is its escape of `$`, the rest is one `sh -c` argument.
  const script = /^ExecStartPre=\/bin\/sh -c '(.*)'$/.exec(pre)![1]!.replaceAll('$$', '$');
  const run = (env: Record<string, string>) => execa('/bin/sh', ['-c', script], { reject: false, env, extendEnv: false });
  const missing = await run({ DATABASE_URL: 'postgres://x' });
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /duet: SESSION_SECRET \(secrets of my-app in duet.yml\) is not set by its env_files/);
  assert.equal((await run({ DATABASE_URL: 'postgres://x', SESSION_SECRET: 'long-enough-secret' })).exitCode, 0);
  // The app's own step socket, whose runner systemd hands the files: its install, build and release get their values, duet never does.
  const stepSocket = await readFile(join(root, 'etc/systemd/system/duet-step-my-app.socket'), 'utf8');
  assert.match(stepSocket, /^ListenStream=\/run\/duet\/step-my-app\.sock$/m);
  assert.match(stepSocket, /^Accept=yes$/m);
  const runner = await readFile(join(root, 'etc/systemd/system/duet-step-my-app@.service'), 'utf8');
  assert.match(runner, /^User=duet-app$/m);
  assert.match(runner, /^LoadCredential=env-0:\/etc\/duet\/env\/my-app\.env$/m);
  assert.match(await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8'), /^Wants=duet-step\.socket duet-step-my-app\.socket$/m);
  assert.equal(
    parseConfig(configText({ name: 'my-app', top, app: [...app, 'build_env: [DATABASE_URL]'] }), 'duet.yml').apps.get('my-app')!.stepSocket,
    '/run/duet/step-my-app.sock',
  );

  await writeConfig(root, configText({ name: 'my-app', top, app: ['switch: socket'] }));
  await installInto(root);
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-app@my\\x2dapp-green.service.d/env-files.conf')), 'no env_files, no drop-in');
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-step-my-app.socket')), 'no env_files, no step socket of its own');
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-step-my-app@.service')));
});

test('runner: process: the instances outlive a restart of duet.service (KillMode=process); no app units, no step socket', async (t) => {
  const root = await tempDir(t, 'duet-process-runner');
  await writeConfig(root, configText());
  await installInto(root);
  const unit = await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8');
  assert.match(unit, /^KillMode=process$/m);
  assert.doesNotMatch(unit, /duet-step/);
  for (const path of [
    'etc/systemd/user/duet-app@.service',
    'etc/systemd/system/duet-app@.service',
    'etc/systemd/system/duet-step.socket',
    'etc/polkit-1/rules.d/50-duet.rules',
  ]) {
    await assert.rejects(stat(join(root, path)), path);
  }
});

test('app_user needs runner: systemd and another user than duet', () => {
  const base = (top: string[]) => configText({ top, app: ['switch: socket'] });
  assert.throws(() => parseConfig(base(['app_user: duet-app']), 'duet.yml'), /app_user: needs runner: systemd/);
  assert.throws(() => parseConfig(base(['runner: systemd', 'app_user: duet']), 'duet.yml'), /app_user: is duet's own user/);
  assert.throws(() => parseConfig(base(['runner: systemd', 'app_user: root']), 'duet.yml'), /app_user: the apps must not run as root/);
  assert.throws(() => parseConfig(base(['runner: systemd', 'app_user: "a b"']), 'duet.yml'), /app_user: a system user name/);
  assert.equal(parseConfig(base(['runner: systemd', 'app_user: duet-app']), 'duet.yml').apps.get('cafeteria')?.appUser, 'duet-app');
});

test('install refuses configs that would need write access to /etc/nginx or cannot reload', async (t) => {
  const root = await tempDir(t, 'duet-refuse');
  await writeConfig(root, configText({ top: ['nginx: { conf_dir: /etc/nginx/conf.d }'], app: ['switch: socket'] }));
  const inside = await runDuet(['--config', '/etc/duet/duet.yml', 'install', '--root', root]);
  assert.equal(inside.code, 2, inside.stderr);
  assert.match(inside.stderr, /nginx\.conf_dir is \/etc\/nginx\/conf\.d: duet would need write access to \/etc\/nginx/);

  await writeConfig(root, configText({ top: ['nginx: { conf_dir: /etc/duet/nginx.d }'] }));
  const noSudo = await runDuet(['--config', '/etc/duet/duet.yml', 'install', '--root', root]);
  assert.equal(noSudo.code, 2);
  assert.match(noSudo.stderr, /run as user duet, who cannot test or reload the system nginx/);
  assert.match(noSudo.stderr, /hint: prefix them with sudo/);
  assert.deepEqual(await readdir(root), ['etc'], 'nothing but the config was there, nothing was added');
  assert.deepEqual(await readdir(join(root, 'etc')), ['duet']);
});

test('install on the machine itself needs root; --dry-run does not', async (t) => {
  const args = await runDuet(['install', 'extra']);
  assert.equal(args.code, 2);
  const help = await runDuet(['help', 'install']);
  assert.match(help.stdout, /--root DIR .*useradd, chown, systemctl/s);
  // As nobody, against the real / : refused before anything is read or written.
  await t.test('as nobody', { skip: process.getuid?.() !== 0 && 'needs root (to drop to nobody)' }, async () => {
    const asNobody = { uid: 65534, gid: 65534 };
    const refused = await execa('node', [cliPath(), 'install'], { ...asNobody, reject: false, stdin: 'ignore' });
    assert.equal(refused.exitCode, 1);
    assert.match(String(refused.stderr), /must run as root/);
    const dry = await execa('node', [cliPath(), '--config', '/nonexistent/duet.yml', 'install', '--dry-run'], { ...asNobody, reject: false, stdin: 'ignore' });
    assert.equal(dry.exitCode, 0, String(dry.stderr));
    assert.match(String(dry.stdout), /dry run: nothing is changed/);
    assert.match(String(dry.stdout), /create +\/nonexistent\/duet\.yml +0640 root:duet \(starter config\)/);
  });
});

test('install --root with tls acme: the webroot nginx serves, state_dir passable, and certbot listed with its deploy hook', async (t) => {
  const root = await tempDir(t, 'duet-install-acme');
  await writeConfig(
    root,
    configText({
      app: ['server_name: shop.example.com', 'aliases: [www.shop.example.com]', 'listen: 80', 'tls: { mode: acme, acme: { email: ops@example.com } }'],
    }),
  );
  const result = await installInto(root);
  assert.equal(await mode(join(root, 'var/lib/duet')), '711', "nginx's workers pass through to the webroot");
  assert.equal(await mode(join(root, 'var/lib/duet/acme')), '755');
  assert.equal(await mode(join(root, 'var/lib/duet/acme/cafeteria')), '755');
  assert.match(
    result.stdout,
    /skip\s+certbot certonly --webroot -d shop\.example\.com -d www\.shop\.example\.com\s+cafeteria's certificate \(--root: not run\)/,
  );
  const dry = await runDuet(['--config', '/etc/duet/duet.yml', 'install', '--root', root, '--dry-run']);
  assert.match(dry.stdout, /certbot certonly/, 'a second run still lists it: no certificate was issued');
});

test('app_user: the builds run in duet-build.slice, idle CPU, IOWeight 10, build_limits memory; the apps and duet are spared by the OOM killer', async (t) => {
  const root = await tempDir(t, 'duet-build-slice');
  const top = ['runner: systemd', 'app_user: duet-app', 'nginx: { conf_dir: /etc/duet/nginx.d }'];
  await writeConfig(root, configText({ name: 'my-app', top, app: ['switch: socket'] }));
  await installInto(root);
  const slice = await readFile(join(root, 'etc/systemd/system/duet-build.slice'), 'utf8');
  for (const line of ['CPUWeight=idle', 'IOWeight=10', 'MemoryHigh=60%', 'MemoryMax=75%']) assert.match(slice, new RegExp(`^${line}$`, 'm'));
  const runner = await readFile(join(root, 'etc/systemd/system/duet-step@.service'), 'utf8');
  assert.match(runner, /^Slice=duet-build\.slice$/m);
  assert.match(runner, /^OOMScoreAdjust=1000$/m);
  assert.match(await readFile(join(root, 'etc/systemd/system/duet-app@.service'), 'utf8'), /^OOMScoreAdjust=-500$/m);
  assert.match(await readFile(join(root, 'etc/systemd/system/duet.service'), 'utf8'), /^OOMScoreAdjust=-500$/m);

  // build_limits changed: the next install writes the slice anew.
  await writeConfig(
    root,
    configText({ name: 'my-app', top: [...top, 'build_limits: { memory_high: 700M, memory_max: 1073741824 }'], app: ['switch: socket'] }),
  );
  await installInto(root);
  const changed = await readFile(join(root, 'etc/systemd/system/duet-build.slice'), 'utf8');
  assert.match(changed, /^MemoryHigh=700M$/m);
  assert.match(changed, /^MemoryMax=1073741824$/m);

  // Without app_user the builds are duet's children: no slice, and a user manager may not lower an app's score.
  await writeConfig(root, configText({ name: 'my-app', top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket'] }));
  await installInto(root);
  await assert.rejects(stat(join(root, 'etc/systemd/system/duet-build.slice')));
  assert.doesNotMatch(await readFile(join(root, 'etc/systemd/user/duet-app@.service'), 'utf8'), /OOMScoreAdjust/);
});

test('socket_activation under runner: systemd: a socket unit per color beside its service, started only through polkit as app_user; the drop-ins go with socket_activation', async (t) => {
  const root = await tempDir(t, 'duet-activation');
  const top = ['runner: systemd', 'app_user: duet-app', 'nginx: { conf_dir: /etc/duet/nginx.d }'];
  await writeConfig(root, configText({ name: 'my-app', top, app: ['switch: socket', 'socket_activation: true'] }));
  await installInto(root);
  const system = join(root, 'etc/systemd/system');
  const template = await readFile(join(system, 'duet-app@.socket'), 'utf8');
  for (const line of ['Accept=no', 'SocketMode=0666', 'SocketUser=duet-app', 'SocketGroup=duet', 'RemoveOnStop=yes'])
    assert.match(template, new RegExp(`^${line}$`, 'm'));
  assert.doesNotMatch(template, /^WantedBy=/m, 'not enabled: duet-bootup starts the colors that ran');
  for (const color of ['blue', 'green']) {
    const listen = await readFile(join(system, `duet-app@my\\x2dapp-${color}.socket.d/listen.conf`), 'utf8');
    assert.match(listen, new RegExp(`^ListenStream=/var/lib/duet/my-app/sockets/${color}\\.sock$`, 'm'));
    assert.match(listen, new RegExp(`^FileDescriptorName=${color}$`, 'm'));
    const service = await readFile(join(system, `duet-app@my\\x2dapp-${color}.service.d/activation.conf`), 'utf8');
    assert.match(service, /^ExecStartPre=$/m, "the socket file is the socket unit's: not removed before a start");
    assert.match(service, /^StartLimitIntervalSec=0$/m, 'no start limit: duet serve judges a version that cannot start');
    assert.match(service, /^Restart=always$/m, 'a clean exit goes through a restart too, never through the socket unit trigger limit');
  }
  const rules: Array<(action: { id: string; lookup: (key: string) => string | undefined }, subject: { user: string }) => string> = [];
  runInNewContext(await readFile(join(root, 'etc/polkit-1/rules.d/50-duet.rules'), 'utf8'), {
    polkit: { Result: { YES: 'yes', NOT_HANDLED: 'not handled' }, addRule: (f: (typeof rules)[number]) => rules.push(f) },
  });
  const ask = (unit: string, verb: string) =>
    rules[0]!({ id: 'org.freedesktop.systemd1.manage-units', lookup: (key) => ({ unit, verb })[key] }, { user: 'duet' });
  assert.equal(ask('duet-app@my\\x2dapp-green.socket', 'start'), 'yes');
  assert.equal(ask('duet-app@my\\x2dapp-green.socket', 'stop'), 'yes');
  assert.equal(ask('duet-step.socket', 'stop'), 'not handled', 'no other socket');

  // The service user's own systemd: the same units under /etc/systemd/user, without a user to switch to.
  await writeConfig(
    root,
    configText({ name: 'my-app', top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket', 'socket_activation: true'] }),
  );
  await installInto(root);
  await assert.rejects(stat(join(system, 'duet-app@.socket')));
  await assert.rejects(stat(join(system, 'duet-app@my\\x2dapp-blue.socket.d/listen.conf')));
  assert.doesNotMatch(await readFile(join(root, 'etc/systemd/user/duet-app@.socket'), 'utf8'), /^SocketUser=/m);
  assert.match(await readFile(join(root, 'etc/systemd/user/duet-app@my\\x2dapp-blue.socket.d/listen.conf'), 'utf8'), /^ListenStream=/m);

  // Off again: the drop-ins go.
  await writeConfig(root, configText({ name: 'my-app', top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket'] }));
  await installInto(root);
  await assert.rejects(stat(join(root, 'etc/systemd/user/duet-app@my\\x2dapp-blue.socket.d/listen.conf')));
  await assert.rejects(stat(join(root, 'etc/systemd/user/duet-app@my\\x2dapp-blue.service.d/activation.conf')));
});
