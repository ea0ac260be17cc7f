import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import type { AppConfig } from '../../src/config/load.js';
import { renderSystemdTemplate, systemdPath } from '../../src/setup/render.js';
import { activationDropIns } from '../../src/setup/units.js';
import { pollUntil } from '../../src/util/poll.js';
import { tempDir } from './tmp.js';

const SYSTEMD = '/lib/systemd/systemd';

export interface UserSystemd {
  /** What duet (and systemctl) need to reach this manager: XDG_RUNTIME_DIR. */
  env: Record<string, string>;
  /**
   * Where `duet install` would put duet-app@.service (and, for `app`'s socket_activation, the
   * socket template and each color's drop-ins); here, the manager's own unit dir.
   */
  installAppUnit(stateDir: string, app?: AppConfig): Promise<void>;
  systemctl(args: string[]): Promise<string>;
}

/**
 * A real systemd user manager (`systemd --user`) for one test, as the service user's own
 * systemd runs the app units on a server. It refuses to start unless the machine was booted
 * with systemd (it checks for /run/systemd/system); the test machine was not. So it runs in a
 * private mount namespace with a fresh tmpfs on /run holding that directory -- which changes
 * nothing for duet, which reaches the manager through XDG_RUNTIME_DIR in a temp dir.
 * Returns undefined (the test is skipped, visibly) where that cannot be done: not root, no
 * systemd package, no mount namespaces.
 */
export async function startUserSystemd(t: TestContext): Promise<UserSystemd | undefined> {
  const missing = process.getuid?.() !== 0 ? 'needs root for a mount namespace' : !existsSync(SYSTEMD) ? `no ${SYSTEMD} (Debian package systemd)` : undefined;
  if (missing) {
    t.skip(`runner: systemd not tested against a real systemd: ${missing}`);
    return undefined;
  }
  let manager: ResultPromise | undefined;
  // Registered before the temp dir, so it runs first: the manager stops every unit as it exits.
  t.after(async () => {
    if (!manager) return;
    manager.kill('SIGTERM');
    const exited = await Promise.race([manager.then(() => true), new Promise((r) => setTimeout(r, 10_000, false))]);
    if (!exited) manager.kill('SIGKILL');
    await manager;
  });
  const dir = await tempDir(t, 'duet-user-systemd');
  const runtime = join(dir, 'runtime');
  const unitDir = join(dir, 'config', 'systemd', 'user');
  await mkdir(runtime, { recursive: true });
  await chmod(runtime, 0o700);
  await mkdir(unitDir, { recursive: true });
  const env = { XDG_RUNTIME_DIR: runtime };

  manager = execa(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec ${SYSTEMD} --user`],
    { env: { ...env, XDG_CONFIG_HOME: join(dir, 'config'), HOME: dir }, extendEnv: true, stdin: 'ignore', all: true, reject: false },
  );
  const socket = join(runtime, 'systemd', 'private');
  const started = manager;
  const up = await pollUntil(async () => (existsSync(socket) ? true : started.exitCode !== null ? false : undefined), { timeoutMs: 15_000 });
  if (!up) {
    started.kill('SIGKILL');
    const output = String((await started).all);
    if (/unshare failed|Operation not permitted/.test(output)) {
      t.skip(`runner: systemd not tested: no mount namespace here (${output.trim()})`);
      return undefined;
    }
    throw new Error(`systemd --user did not come up:\n${output}`);
  }

  const systemctl = async (args: string[]): Promise<string> =>
    String((await execa('systemctl', ['--user', ...args], { env, extendEnv: true, stdin: 'ignore' })).stdout);
  return {
    env,
    systemctl,
    async installAppUnit(stateDir, app) {
      // The same templates, drop-ins and renderer `duet install` uses for /etc/systemd/user.
      const unit = await renderSystemdTemplate('duet-app@.service.template', { state_dir: systemdPath(stateDir), app_user: false, socket_apps: false });
      await writeFile(join(unitDir, 'duet-app@.service'), unit);
      await writeFile(join(unitDir, 'duet-app@.socket'), await renderSystemdTemplate('duet-app@.socket.template', { app_user: false }));
      for (const dropIn of app ? activationDropIns(app, unitDir) : []) {
        if (dropIn.content === undefined) continue;
        await mkdir(dirname(dropIn.path), { recursive: true });
        await writeFile(dropIn.path, dropIn.content);
      }
      await systemctl(['daemon-reload']);
    },
  };
}
