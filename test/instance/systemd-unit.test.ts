import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { parseSetupConfig } from '../../src/setup/settings.js';
import { sudoersCommands } from '../../src/setup/sudoers.js';
import { appUnitName, instanceEnvPath, parseShow, renderInstanceEnv, SystemdRunner } from '../../src/setup/systemd-runner.js';
import { tempDir } from '../support/tmp.js';
import { requireBinary, runTool } from './helpers.js';

/**
 * runner: systemd, as far as it can be tested without systemd as PID 1: unit names, the
 * environment file, the systemctl argument arrays and the parsing of `systemctl show`. Starting
 * and supervising real units is NOT tested here.
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

test('the environment file carries what runner.ts gives an instance, quoted for EnvironmentFile=', async (t) => {
  const stateDir = await tempDir(t, 'duet-sd');
  const app = pickApp(config(stateDir), 'my-app');
  const env = renderInstanceEnv(app, 'blue', { sha: 'a'.repeat(40), ref: 'refs/tags/v1' });
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
  assert.match(renderInstanceEnv(socketApp, 'green', { sha: 'b'.repeat(40), ref: 'main' }), new RegExp(`^PORT="${stateDir}/web/sockets/green.sock"$`, 'm'));
  const multiline = { ...app, start: 'a\nb' };
  assert.throws(() => renderInstanceEnv(multiline, 'blue', { sha: 'c', ref: 'r' }), /spans lines/);
});

test('SystemdRunner: start writes the env file, then runs exactly what sudoers allows; show needs no sudo', async (t) => {
  const stateDir = await tempDir(t, 'duet-sd-run');
  const parsed = config(stateDir);
  const app = pickApp(parsed, 'my-app');
  const calls: string[][] = [];
  const runner = new SystemdRunner({
    stateDir,
    systemctl: '/usr/bin/systemctl',
    sudo: true,
    exec: async (argv) => {
      calls.push(argv);
      return argv.includes('show') ? 'ActiveState=active\nSubState=running\nMainPID=4711\n' : '';
    },
  });
  const state = await runner.start(app, 'green', { sha: 'd'.repeat(40), ref: 'refs/heads/main' });
  assert.deepEqual(state, { active: true, pid: 4711, activeState: 'active', subState: 'running' });
  assert.deepEqual(calls, [
    ['sudo', '-n', '/usr/bin/systemctl', 'start', 'duet-app@my\\x2dapp-green.service'],
    ['/usr/bin/systemctl', 'show', '--property=ActiveState,SubState,MainPID', 'duet-app@my\\x2dapp-green.service'],
  ]);
  const envPath = instanceEnvPath(stateDir, 'my-app', 'green');
  assert.equal(envPath, join(stateDir, 'my-app', 'green.env'), 'EnvironmentFile=<state_dir>/%I.env with %I = my-app/green');
  assert.equal((await stat(envPath)).mode & 0o777, 0o600);
  assert.match(await readFile(envPath, 'utf8'), /^DUET_COLOR="green"$/m);
  await runner.stop('my-app', 'green');
  assert.deepEqual(calls.at(-1), ['sudo', '-n', '/usr/bin/systemctl', 'stop', 'duet-app@my\\x2dapp-green.service']);

  // The sudoers drop-in lists exactly these commands (without the sudo prefix).
  const setup = parseSetupConfig(`state_dir: ${stateDir}\nrunner: systemd\nnginx: { conf_dir: /etc/duet/nginx.d }\napps:\n  my-app: { clone_url: x, switch: socket }\n`, 'duet.yml');
  const allowed = (sudoersCommands(setup) ?? []).map((argv) => argv.join(' '));
  for (const verb of ['start', 'stop', 'restart'] as const) {
    const argv = runner.verbArgv(verb, 'my-app', 'blue').slice(2);
    assert.ok(allowed.some((line) => line.endsWith(argv.slice(1).join(' '))), `${argv.join(' ')} is allowed`);
  }
});

test('parseShow: a crashed, restarting or stopped unit is not running', () => {
  assert.deepEqual(parseShow('ActiveState=activating\nSubState=auto-restart\nMainPID=0\n'), { active: false, pid: undefined, activeState: 'activating', subState: 'auto-restart' });
  assert.deepEqual(parseShow('ActiveState=inactive\nSubState=dead\nMainPID=0'), { active: false, pid: undefined, activeState: 'inactive', subState: 'dead' });
  assert.equal(parseShow('').activeState, 'unknown');
});
