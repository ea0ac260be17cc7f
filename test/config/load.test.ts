import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, loadConfig, findConfigFile, pickApp } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { exitCodeOf } from '../../src/error-kinds.js';

const minimal = `
state_dir: /tmp/duet-state
apps:
  cafeteria:
    clone_url: /srv/cafeteria.git
`;

test('a minimal file gets the documented defaults', () => {
  const config = parseConfig(minimal, 'duet.yml');
  const app = pickApp(config, undefined);
  assert.equal(app.name, 'cafeteria');
  assert.deepEqual(app.ports, { blue: 20201, green: 20202 });
  assert.equal(app.switch, 'port');
  assert.equal(app.standby, 'keep');
  assert.equal(app.health.path, '/health');
  assert.equal(app.health.timeout_s, 60);
  assert.equal(app.install, undefined, "unset: the lockfile's package manager chooses");
  assert.equal(app.prune, true);
  assert.deepEqual(app.deploy_on.branches, ['main']);
  assert.equal(config.nginx.managed, undefined);
  assert.deepEqual(config.nginx.testCmd, ['nginx', '-t']);
  assert.equal(app.paths.checkout.green, '/tmp/duet-state/cafeteria/green');
});

test('managed nginx derives its own prefix and commands', () => {
  const config = parseConfig(`nginx: { managed: true }\n${minimal}`, 'duet.yml');
  assert.equal(config.nginx.managed?.prefix, '/tmp/duet-state/nginx');
  assert.equal(config.nginx.confDir, '/tmp/duet-state/nginx/conf.d');
  assert.deepEqual(config.nginx.reloadCmd.slice(-2), ['-s', 'reload']);
});

function configError(text: string): ConfigError {
  try {
    parseConfig(text, '/etc/duet/duet.yml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(exitCodeOf(error), 2);
    return error;
  }
  assert.fail('the configuration was accepted');
}

test('an unknown key is named with its path', () => {
  const error = configError(`${minimal}    colour: blue\n`);
  assert.match(error.message, /^\/etc\/duet\/duet\.yml: apps\.cafeteria: .*colour/);
});

test('a wrong type names the key path and what was expected', () => {
  const error = configError(`${minimal}    ports: { blue: "20201", green: 20202 }\n`);
  assert.match(error.message, /apps\.cafeteria\.ports\.blue: .*expected number/);
});

test('deploy_on.wait_for_checks: off by default, {} waits for all checks with the defaults, and needs repo', () => {
  assert.equal(pickApp(parseConfig(minimal, 'duet.yml'), undefined).deploy_on.wait_for_checks, undefined);
  const gated = `${minimal}    repo: acme/cafeteria\n    deploy_on: { branches: [main], wait_for_checks: {} }\n`;
  assert.deepEqual(pickApp(parseConfig(gated, 'duet.yml'), undefined).deploy_on.wait_for_checks, {
    checks: 'all',
    timeout_s: 1800,
    prepare_while_waiting: true,
    poll_s: 30,
  });
  const named = `${minimal}    repo: acme/cafeteria\n    deploy_on: { wait_for_checks: { checks: [test, lint], timeout_s: 600 } }\n`;
  assert.deepEqual(pickApp(parseConfig(named, 'duet.yml'), undefined).deploy_on.wait_for_checks?.checks, ['test', 'lint']);
  assert.match(configError(`${minimal}    deploy_on: { wait_for_checks: {} }\n`).message, /apps\.cafeteria\.deploy_on\.wait_for_checks: .*set repo/);
  assert.match(configError(`${minimal}    repo: a/b\n    deploy_on: { wait_for_checks: { checks: [] } }\n`).message, /wait_for_checks\.checks/);
  assert.match(configError(`${minimal}    repo: a/b\n    deploy_on: { wait_for_checks: { timeout_s: 0 } }\n`).message, /wait_for_checks\.timeout_s/);
});

test('the same port for both colors is refused', () => {
  const error = configError(`${minimal}    ports: { blue: 20201, green: 20201 }\n`);
  assert.match(error.message, /apps\.cafeteria\.ports: blue and green need different ports/);
});

test('a port shared between two apps is refused', () => {
  const error = configError(`${minimal}  menu:\n    clone_url: /srv/menu.git\n`);
  assert.match(error.message, /apps\.menu\.ports\.blue: port 20201 is already used by apps\.cafeteria\.ports\.blue/);
});

test('a missing clone_url, bad app name and missing apps are explained', () => {
  assert.match(configError('apps:\n  cafeteria: { listen: 8080 }\n').message, /apps\.cafeteria\.clone_url/);
  assert.match(configError('apps:\n  Cafe_1: { clone_url: x }\n').message, /app names use a-z/);
  assert.match(configError('state_dir: /x\n').message, /apps: /);
  assert.match(configError('apps: [\n').message, /not valid YAML/);
});

test('commands must be argument arrays, not shell strings', () => {
  assert.match(configError(`nginx: { test_cmd: "nginx -t" }\n${minimal}`).message, /nginx\.test_cmd: .*expected array/);
});

test('a missing app is a clear error; several apps need a name', () => {
  const config = parseConfig(`${minimal}  menu:\n    clone_url: /srv/menu.git\n    ports: { blue: 20301, green: 20302 }\n    listen: 8081\n`, 'duet.yml');
  assert.throws(() => pickApp(config, undefined), /configures 2 apps; name one/);
  assert.throws(() => pickApp(config, 'kitchen'), /no app named "kitchen"/);
  assert.equal(pickApp(config, 'menu').ports.blue, 20301);
});

test('the file is found via --config, then $DUET_CONFIG, then ./duet.yml, then /etc/duet', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'duet-config-'));
  try {
    assert.equal(findConfigFile('x.yml', {}, dir), join(dir, 'x.yml'));
    assert.equal(findConfigFile(undefined, { DUET_CONFIG: '/a/b.yml' }, dir), '/a/b.yml');
    assert.equal(findConfigFile(undefined, {}, dir), '/etc/duet/duet.yml');
    await writeFile(join(dir, 'duet.yml'), minimal);
    assert.equal(findConfigFile(undefined, {}, dir), join(dir, 'duet.yml'));
    assert.equal(pickApp(await loadConfig(join(dir, 'duet.yml')), undefined).name, 'cafeteria');
    await assert.rejects(loadConfig(join(dir, 'missing.yml')), /cannot read the configuration \(ENOENT\)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an app may not take a name duet uses for its own files in state_dir', () => {
  assert.throws(() => parseConfig('apps:\n  nginx:\n    clone_url: /srv/app.git\n', 'duet.yml'), /apps\.nginx.*reserved: duet keeps its own files/);
});

test('socket_activation needs switch: socket, and says why; either runner holds the socket', () => {
  assert.match(configError(`${minimal}    socket_activation: true\n`).message, /socket_activation.*needs switch: socket/s);
  const systemd = pickApp(parseConfig(`runner: systemd\n${minimal}    switch: socket\n    socket_activation: true\n`, 'duet.yml'), undefined);
  assert.equal(systemd.socket_activation, true);
  const app = pickApp(parseConfig(`${minimal}    switch: socket\n    socket_activation: true\n`, 'duet.yml'), undefined);
  assert.equal(app.socket_activation, true);
});

test('build_limits: defaults 60% / 75% of RAM, one build at a time; an app may change its memory preflight only', () => {
  const app = pickApp(parseConfig(minimal, 'duet.yml'), undefined);
  assert.deepEqual(app.buildLimits, { memory_high: '60%', memory_max: '75%', concurrency: 1, min_free_memory_mb: 0, min_free_memory_wait_s: 120 });
  const text = `build_limits: { memory_max: 1536M, concurrency: 2, min_free_memory_mb: 300 }\n${minimal}    build_limits: { min_free_memory_mb: 500 }\n`;
  const config = parseConfig(text, 'duet.yml');
  assert.equal(config.buildLimits.memory_max, '1536M');
  assert.deepEqual(pickApp(config, undefined).buildLimits, {
    memory_high: '60%',
    memory_max: '1536M',
    concurrency: 2,
    min_free_memory_mb: 500,
    min_free_memory_wait_s: 120,
  });
  assert.match(configError(`build_limits: { memory_max: 80 percent }\n${minimal}`).message, /build_limits\.memory_max: .*a percentage of RAM/);
  assert.match(configError(`build_limits: { concurrency: 0 }\n${minimal}`).message, /build_limits\.concurrency/);
  // One slice and one count for the whole machine: an app cannot have its own.
  assert.match(configError(`${minimal}    build_limits: { concurrency: 3 }\n`).message, /apps\.cafeteria\.build_limits: .*concurrency/);
});
