import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { managedNginxPaths } from '../../src/config/paths.js';
import { switchOf } from '../../src/switch/switch.js';
import { renderTemplateFile } from '../../src/switch/templates.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';
import { configText, installInto, requireBinary, runTool, writeConfig } from './helpers.js';

/**
 * The generated files are checked by the tools that will read them: systemd-analyze verify for
 * the units, nginx -t for the site, visudo -c for the sudoers drop-in. A missing tool skips its
 * test with a message naming the Debian package (see scripts/install-deps).
 */

const variants: Record<string, string> = {
  'port mode, runner process': configText(),
  'socket mode, strict sandbox': configText({ top: ['nginx: { conf_dir: /etc/duet/nginx.d }'], app: ['switch: socket'] }),
  'runner systemd, app name with a dash': configText({
    name: 'my-app',
    top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'],
    app: ['switch: socket'],
  }),
  'runner systemd, socket_activation': configText({
    name: 'my-app',
    top: ['runner: systemd', 'nginx: { conf_dir: /etc/duet/nginx.d }'],
    app: ['switch: socket', 'socket_activation: true'],
  }),
  'runner systemd, app_user': configText({
    name: 'my-app',
    top: ['runner: systemd', 'app_user: duet-app', 'nginx: { conf_dir: /etc/duet/nginx.d }', 'build_limits: { memory_high: 1G, memory_max: 1536M }'],
    app: ['switch: socket', 'socket_activation: true'],
  }),
};

test('the generated units pass systemd-analyze verify', async (t) => {
  const analyze = requireBinary(t, 'systemd-analyze', 'systemd');
  if (!analyze) return;
  for (const [name, config] of Object.entries(variants)) {
    const root = await tempDir(t, 'duet-units');
    await writeConfig(root, config);
    await installInto(root);
    const dir = join(root, 'etc/systemd/system');
    const units = ['duet.service', 'duet-bootup.service'];
    const paths = units.map((unit) => join(dir, unit));
    if (config.includes('runner: systemd')) {
      // An instance as duet would start it: the template under the escaped instance name.
      const unitDir = join(root, config.includes('app_user:') ? 'etc/systemd/system' : 'etc/systemd/user');
      const instance = join(unitDir, 'duet-app@my\\x2dapp-blue.service');
      await copyFile(join(unitDir, 'duet-app@.service'), instance);
      paths.push(join(unitDir, 'duet-app@.service'), instance);
      if (config.includes('socket_activation: true')) {
        // The instances with their drop-ins read after them, as systemd reads them.
        const socket = join(unitDir, 'duet-app@my\\x2dapp-blue.socket');
        await writeFile(socket, (await readFile(join(unitDir, 'duet-app@.socket'), 'utf8')) + (await readFile(`${socket}.d/listen.conf`, 'utf8')));
        await appendFile(instance, await readFile(`${instance}.d/activation.conf`, 'utf8'));
        paths.push(socket);
      }
    }
    if (config.includes('app_user:')) {
      // What systemd makes of one accepted connection: duet-step@<n>-<local>-<remote>.service.
      const connection = join(dir, 'duet-step@0-1-2.service');
      await copyFile(join(dir, 'duet-step@.service'), connection);
      paths.push(join(dir, 'duet-step.socket'), join(dir, 'duet-step@.service'), connection, join(dir, 'duet-build.slice'));
    }
    const result = await runTool(analyze, ['verify', '--man=no', ...paths]);
    // verify exits 0 on mere warnings (an unknown key, a bad value it ignores), so its output must be empty too.
    assert.equal(result.code, 0, `${name}: ${result.output}`);
    assert.equal(result.output.trim(), '', `${name}: systemd-analyze had something to say:\n${result.output}`);
  }
});

test('systemd-analyze verify is not a rubber stamp: it reports a broken unit', async (t) => {
  const analyze = requireBinary(t, 'systemd-analyze', 'systemd');
  if (!analyze) return;
  const root = await tempDir(t, 'duet-units-bad');
  await installInto(root);
  const unit = join(root, 'etc/systemd/system/duet.service');
  await appendFile(unit, 'Restrat=on-failure\n');
  const result = await runTool(analyze, ['verify', '--man=no', unit]);
  assert.match(result.output, /Unknown key/);
});

test('the generated nginx site passes nginx -t with app files in its include dir', async (t) => {
  const nginx = requireBinary(t, 'nginx', 'nginx-light');
  if (!nginx) return;
  const root = await tempDir(t, 'duet-site');
  // The include dir is a real directory here (outside the tree), so nginx can follow the include.
  const includeDir = await tempDir(t, 'duet-include');
  const [portListen, socketListen] = [await freePort(), await freePort()];
  const config = [
    'state_dir: /var/lib/duet',
    `nginx: { conf_dir: ${includeDir}, test_cmd: [sudo, -n, ${nginx}, -t], reload_cmd: [sudo, -n, ${nginx}, -s, reload] }`,
    'apps:',
    `  cafeteria: { clone_url: x, listen: "127.0.0.1:${portListen}" }`,
    `  menu: { clone_url: y, listen: "127.0.0.1:${socketListen}", switch: socket, ports: { blue: 20301, green: 20302 } }`,
    '',
  ].join('\n');
  await writeConfig(root, config);
  await installInto(root);

  // What duet writes on a switch, and what install pre-rendered for the socket-mode app.
  const parsed = parseConfig(config, 'duet.yml');
  await writeFile(join(includeDir, 'duet-cafeteria.conf'), await switchOf(pickApp(parsed, 'cafeteria')).renderConf('green'));
  await copyFile(join(root, includeDir, 'duet-menu.conf'), join(includeDir, 'duet-menu.conf'));

  // A stand-in for Debian's nginx.conf: an http block that includes /etc/nginx/conf.d/*.conf.
  const paths = managedNginxPaths(await tempDir(t, 'duet-nginx-main'));
  await mkdir(paths.confDir, { recursive: true });
  for (const dir of ['client_body_temp', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp']) await mkdir(join(paths.prefix, dir));
  const main = { prefix: paths.prefix, pid_file: paths.pidFile, error_log: paths.errorLog, conf_dir: paths.confDir };
  await writeFile(paths.mainConf, await renderTemplateFile('nginx.conf.template', main));
  await writeFile(join(paths.confDir, 'system.conf'), `include ${join(root, 'etc/nginx/conf.d')}/*.conf;\n`);

  const nginxTest = () => runTool(nginx, ['-t', '-p', paths.prefix, '-c', paths.mainConf, '-e', paths.errorLog]);
  const ok = await nginxTest();
  assert.equal(ok.code, 0, ok.output);

  // The include really is followed: a broken app file makes the same test fail, naming it.
  await appendFile(join(includeDir, 'duet-cafeteria.conf'), 'this is not nginx;\n');
  const broken = await nginxTest();
  assert.notEqual(broken.code, 0);
  assert.match(broken.output, /duet-cafeteria\.conf/);
});

test('the sudoers drop-in passes visudo -c, escapes included', async (t) => {
  const visudo = requireBinary(t, 'visudo', 'sudo');
  if (!visudo) return;
  const cases = [
    configText(),
    configText({
      name: 'my-app',
      top: [
        'runner: systemd',
        'nginx:',
        '  conf_dir: /etc/duet/nginx.d',
        '  test_cmd: [sudo, -n, /usr/sbin/nginx, -t, -c, "/etc/nginx/a,b=c:d.conf"]',
        '  reload_cmd: [sudo, --non-interactive, /usr/bin/systemctl, reload, nginx.service]',
      ],
    }),
  ];
  for (const config of cases) {
    const root = await tempDir(t, 'duet-sudoers');
    await writeConfig(root, config);
    await installInto(root);
    const file = join(root, 'etc/sudoers.d/duet');
    const text = await readFile(file, 'utf8');
    const result = await runTool(visudo, ['-c', '-f', file]);
    assert.equal(result.code, 0, `${text}\n${result.output}`);
    if (config.includes('a,b=c:d')) assert.match(text, /\/etc\/nginx\/a\\,b\\=c\\:d\.conf/, 'sudoers syntax characters are escaped');
  }
});
