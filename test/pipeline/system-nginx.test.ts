import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config/load.js';
import { ensureManagedNginx, stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { setupDuet } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';

/**
 * With `nginx.managed: false` duet only writes duet-<app>.conf into conf_dir and runs the
 * configured test and reload commands. The "system" nginx here is one the test starts itself.
 */
async function systemNginx(t: import('node:test').TestContext) {
  // Registered before the temp dir: after hooks run in order, and nginx must be stopped while
  // its pid file still exists.
  let system: Config | undefined;
  t.after(() => system && stopManagedNginx(system));
  const dir = await tempDir(t, 'duet-system-nginx');
  system = parseConfig(
    `state_dir: ${dir}\nnginx: { managed: true }\napps:\n  placeholder: { clone_url: x, ports: { blue: 1, green: 2 }, listen: 3 }\n`,
    'system.yml',
  );
  await ensureManagedNginx(system);
  const yamlList = (argv: string[]) => `[${argv.map((a) => JSON.stringify(a)).join(', ')}]`;
  return {
    confDir: system.nginx.confDir,
    // Its pid_file, as a system nginx's /run/nginx.pid: verify watches the reload's old workers.
    nginxYaml: (reload: string[] = system.nginx.reloadCmd) =>
      `{ managed: false, conf_dir: ${system.nginx.confDir}, pid_file: ${system.nginx.pidFile}, test_cmd: ${yamlList(system.nginx.testCmd)}, reload_cmd: ${yamlList(reload)} }`,
  };
}

test('an unmanaged nginx: duet writes its file into conf_dir and runs the configured commands', async (t) => {
  const nginx = await systemNginx(t);
  const { succeed, get } = await setupDuet(t, { nginx: nginx.nginxYaml() });
  await succeed(['deploy', '--ref', 'v1']);
  const deployed = await succeed(['deploy', '--ref', 'v2']);
  // The system nginx's master, found through pid_file: verify waited for exactly its old workers.
  assert.match(deployed.stderr, /verify: done .*X-Duet-Color: green, and nginx's workers from before the reload stopped accepting/);
  const page = await get('/');
  assert.match(page.body, /cafeteria v2/);
  assert.equal(page.color, 'green');
  const conf = await readFile(join(nginx.confDir, 'duet-cafeteria.conf'), 'utf8');
  assert.match(conf, /default green;/);
});

test('a switch that nginx does not pick up fails verify and is switched back', async (t) => {
  const nginx = await systemNginx(t);
  const setup = await setupDuet(t, { nginx: nginx.nginxYaml(), app: { verify_timeout_s: '1' } });
  const { duet, succeed, get, configPath } = setup;
  await succeed(['deploy', '--ref', 'v1']);
  // A reload command that does nothing: the file changes, what nginx serves does not.
  const yaml = await readFile(configPath, 'utf8');
  await writeFile(configPath, yaml.replace(/^nginx: .*$/m, `nginx: ${nginx.nginxYaml(['true'])}`));
  const failed = await duet(['deploy', '--ref', 'v2']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /verify: /);
  assert.match(failed.stderr, /switching back to blue/);
  assert.equal((await duet(['enabled-instance'])).stdout, 'blue\n', 'the config points at the old color again');
  const page = await get('/');
  assert.match(page.body, /cafeteria v1/);
  assert.equal((await duet(['pid', 'green'])).code, 1, 'the new color was stopped');
  const [last] = JSON.parse((await duet(['history', '--json'])).stdout);
  assert.equal(last.outcome, 'failed');
  assert.equal(last.failedStep, 'verify');
});
