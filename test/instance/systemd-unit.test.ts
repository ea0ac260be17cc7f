import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { parseSetupConfig } from '../../src/setup/settings.js';
import { sudoersCommands } from '../../src/setup/sudoers.js';
import { appUnitName, instanceEnvPath, parseShow, renderInstanceEnv, systemctlArgv, unitLogHint, unitScope } from '../../src/instance/systemd-unit.js';
import { tempDir } from '../support/tmp.js';
import { requireBinary, runTool } from '../setup/helpers.js';

/**
 * The pieces of runner: systemd that need no running systemd: unit names, the environment file,
 * the systemctl argument arrays and the parsing of `systemctl show`. The runner itself runs
 * against a real systemd user manager in test/pipeline/systemd-runner.test.ts.
 */

const config = (stateDir: string) =>
  parseConfig(
    `state_dir: ${stateDir}
runner: systemd
nginx: { conf_dir: /etc/duet/nginx.d }
apps:
  my-app:
    clone_url: x
    start: node server.js --name "a b" $HOME \`id\` \\\\
    env: { NODE_ENV: production, QUOTED: 'say "hi"', DOLLAR: '$PATH' }
  web:
    clone_url: y
    switch: socket
    ports: { blue: 20301, green: 20302 }
    listen: 8081
`,
    'duet.yml',
  );

test('unit names are the systemd-escaped path <app>/<color>, as systemd-escape makes them', async (t) => {
  assert.equal(appUnitName('cafeteria', 'blue'), 'duet-app@cafeteria-blue.service');
  assert.equal(appUnitName('my-app', 'green'), 'duet-app@my\\x2dapp-green.service');
  assert.throws(() => appUnitName('../x', 'blue'));
  const escape = requireBinary(t, 'systemd-escape', 'systemd');
  if (!escape) return;
  for (const app of ['cafeteria', 'my-app', 'a-b-c-1']) {
    const result = await runTool(escape, ['--path', '--template=duet-app@.service', `${app}/green`]);
    // stdout only: systemd-escape warns on stderr that a relative path is not reversible.
    assert.equal(result.stdout.trim(), appUnitName(app, 'green'));
  }
});

const NO_FILES = { values: {}, digests: [] };

test('the environment file carries what runner.ts gives an instance, quoted for EnvironmentFile=', async (t) => {
  const stateDir = await tempDir(t, 'duet-sd');
  const app = pickApp(config(stateDir), 'my-app');
  const env = renderInstanceEnv(app, 'blue', { sha: 'a'.repeat(40), ref: 'refs/tags/v1' }, NO_FILES);
  const lines = env.split('\n');
  assert.ok(lines.includes('PORT="20201"'));
  assert.ok(lines.includes('HOST="127.0.0.1"'));
  assert.ok(lines.includes('DUET_COLOR="blue"'));
  assert.ok(lines.includes(`DUET_REVISION="${'a'.repeat(40)}"`));
  assert.ok(lines.includes('DUET_REF="refs/tags/v1"'));
  assert.ok(lines.includes('NODE_ENV="production"'));
  assert.ok(lines.includes('QUOTED="say \\"hi\\""'));
  assert.ok(lines.includes('DOLLAR="\\$PATH"'), 'no expansion of $ by systemd');
  // The YAML plain scalar ends in two backslashes; each is escaped.
  assert.ok(lines.includes('DUET_START="node server.js --name \\"a b\\" \\$HOME \\`id\\` \\\\\\\\"'), env);

  const socketApp = pickApp(config(stateDir), 'web');
  assert.match(
    renderInstanceEnv(socketApp, 'green', { sha: 'b'.repeat(40), ref: 'main' }, NO_FILES),
    new RegExp(`^PORT="${stateDir}/web/sockets/green.sock"$`, 'm'),
  );
  const multiline = { ...app, start: 'a\nb' };
  assert.throws(() => renderInstanceEnv(multiline, 'blue', { sha: 'c', ref: 'r' }, NO_FILES), /spans lines/);
});

test('systemctl --user, never sudo: the service user starts and stops its own units', async (t) => {
  const stateDir = await tempDir(t, 'duet-sd-run');
  const app = pickApp(config(stateDir), 'my-app');
  assert.deepEqual(systemctlArgv('start', app.name, 'green'), ['systemctl', '--user', 'start', 'duet-app@my\\x2dapp-green.service']);
  assert.deepEqual(systemctlArgv('stop', app.name, 'blue'), ['systemctl', '--user', 'stop', 'duet-app@my\\x2dapp-blue.service']);
  assert.deepEqual(systemctlArgv('show', app.name, 'blue'), [
    'systemctl',
    '--user',
    'show',
    '--property=ActiveState,SubState,MainPID,ExecMainPID,ExecMainCode,ExecMainStatus',
    'duet-app@my\\x2dapp-blue.service',
  ]);
  assert.equal(instanceEnvPath(app, 'green'), join(stateDir, 'my-app', 'green.env'), 'EnvironmentFile=<state_dir>/%I.env with %I = my-app/green');
  // app_user: the system's systemd, through polkit, still no sudo.
  assert.equal(unitScope(app), 'user');
  assert.equal(unitScope({ appUser: 'duet-app' }), 'system');
  assert.deepEqual(systemctlArgv('start', app.name, 'green', 'system'), ['systemctl', 'start', 'duet-app@my\\x2dapp-green.service']);
  assert.equal(unitLogHint({ ...app, appUser: 'duet-app' }, 'blue'), "journalctl -u 'duet-app@my\\x2dapp-blue.service'");
  assert.equal(unitLogHint(app, 'blue'), "journalctl --user -u 'duet-app@my\\x2dapp-blue.service'");
  // socket_activation: the socket unit starts with the service and stops with it, except for a restart.
  const activated = { ...app, socket_activation: true };
  assert.deepEqual(systemctlArgv('start', activated, 'green'), [
    'systemctl',
    '--user',
    'start',
    'duet-app@my\\x2dapp-green.socket',
    'duet-app@my\\x2dapp-green.service',
  ]);
  assert.deepEqual(systemctlArgv('stop', activated, 'green'), [
    'systemctl',
    '--user',
    'stop',
    'duet-app@my\\x2dapp-green.socket',
    'duet-app@my\\x2dapp-green.service',
  ]);
  assert.deepEqual(systemctlArgv('stop', activated, 'green', 'user', { restarting: true }), [
    'systemctl',
    '--user',
    'stop',
    'duet-app@my\\x2dapp-green.service',
  ]);

  // No sudoers drop-in for it: socket mode with runner: systemd needs nothing as root.
  const setup = parseSetupConfig(
    `state_dir: ${stateDir}\nrunner: systemd\nnginx: { conf_dir: /etc/duet/nginx.d }\napps:\n  my-app: { clone_url: x, switch: socket }\n`,
    'duet.yml',
  );
  assert.equal(sudoersCommands(setup), undefined);
});

test('parseShow: a crashed, restarting or stopped unit is not running', () => {
  assert.deepEqual(parseShow('ActiveState=activating\nSubState=auto-restart\nMainPID=0\n'), {
    active: false,
    pid: undefined,
    activeState: 'activating',
    subState: 'auto-restart',
    lastExit: undefined,
  });
  assert.deepEqual(parseShow('ActiveState=inactive\nSubState=dead\nMainPID=0'), {
    active: false,
    pid: undefined,
    activeState: 'inactive',
    subState: 'dead',
    lastExit: undefined,
  });
  assert.equal(parseShow('').activeState, 'unknown');
  // How the last main process ended: an exit code, or the signal that killed it.
  assert.deepEqual(parseShow('ActiveState=activating\nExecMainPID=4711\nExecMainCode=1\nExecMainStatus=3\n').lastExit, { pid: 4711, code: 3, signal: null });
  assert.deepEqual(parseShow('ExecMainPID=4711\nExecMainCode=2\nExecMainStatus=9\n').lastExit, { pid: 4711, code: null, signal: 'SIGKILL' });
  assert.equal(parseShow('ExecMainPID=4711\nExecMainCode=0\nExecMainStatus=0\n').lastExit, undefined, 'still running');
});
