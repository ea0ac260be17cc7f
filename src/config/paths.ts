import { join } from 'node:path';
import type { Color } from './schema.js';

/**
 * app_user: duet-step.socket, through which duet runs the installs and builds as that user
 * (ListenStream= of systemd/duet-step.socket.template). A machine path, like the unit dirs.
 */
export const STEP_SOCKET = '/run/duet/step.sock';

/**
 * app_user, an app with env_files: the step socket of its own (duet-step-<app>.socket), whose
 * runner systemd hands the app's env files (duet install writes it), so that its install, build
 * and release get their values and duet never does.
 */
export const appStepSocket = (app: string): string => `/run/duet/step-${app}.sock`;

/** Where everything of one app lives under state_dir. Derived, never configured, so it cannot drift. */
export interface AppPaths {
  root: string;
  checkout: Record<Color, string>;
  /** Per-color record of what was prepared there (ref, commit, lockfile hash): outside the checkout. */
  colorState: Record<Color, string>;
  /** What the last successful install in a checkout was made from (lockfile hash, command). */
  installStamp: Record<Color, string>;
  pidfile: Record<Color, string>;
  /** The process group of the install or build running in a checkout now, for a resumed deploy to stop. */
  stepGroup: Record<Color, string>;
  /** The same for the early copy of the other color's node_modules (install.ts), which runs beside it. */
  copyGroup: Record<Color, string>;
  instanceLog: Record<Color, string>;
  socket: Record<Color, string>;
  /** The symlink nginx proxies to in socket mode; renaming it is the switch. */
  liveSocket: string;
  /** Socket mode with `fallback`: the symlink to the other color, nginx's fallback. */
  standbySocket: string;
  lock: string;
  /** What duet serve's supervision saw of each color: restarts, down since, the last failover. */
  supervision: string;
  journal: string;
  deployLogs: string;
  /** Releases kept built for a rollback: `<sha>/tree` (checkout, node_modules, build output) and `<sha>/release.json`. */
  releases: string;
  /**
   * certbot's --webroot: nginx serves /.well-known/acme-challenge/ from it. Outside the app root,
   * which port mode keeps closed to nginx's workers.
   */
  acmeWebroot: string;
}

export function appPaths(stateDir: string, app: string): AppPaths {
  const root = join(stateDir, app);
  const perColor = (make: (c: Color) => string): Record<Color, string> => ({ blue: make('blue'), green: make('green') });
  return {
    root,
    checkout: perColor((c) => join(root, c)),
    colorState: perColor((c) => join(root, 'run', `${c}.json`)),
    installStamp: perColor((c) => join(root, 'run', `${c}.install.json`)),
    pidfile: perColor((c) => join(root, 'run', `${c}.pid`)),
    stepGroup: perColor((c) => join(root, 'run', `${c}.step.pid`)),
    copyGroup: perColor((c) => join(root, 'run', `${c}.copy.pid`)),
    instanceLog: perColor((c) => join(root, 'logs', `${c}.log`)),
    socket: perColor((c) => join(root, 'sockets', `${c}.sock`)),
    liveSocket: join(root, 'sockets', 'live.sock'),
    standbySocket: join(root, 'sockets', 'standby.sock'),
    lock: join(root, 'run', 'deploy.lock'),
    supervision: join(root, 'run', 'supervision.json'),
    journal: join(root, 'journal.ndjson'),
    deployLogs: join(root, 'logs', 'deploys'),
    releases: join(root, 'releases'),
    acmeWebroot: join(stateDir, 'acme', app),
  };
}

/** The nginx that duet runs itself with `nginx.managed: true` (demo, tests, tiny setups). */
export interface ManagedNginxPaths {
  prefix: string;
  mainConf: string;
  confDir: string;
  pidFile: string;
  errorLog: string;
}

export function managedNginxPaths(stateDir: string): ManagedNginxPaths {
  const prefix = join(stateDir, 'nginx');
  return {
    prefix,
    mainConf: join(prefix, 'nginx.conf'),
    confDir: join(prefix, 'conf.d'),
    pidFile: join(prefix, 'nginx.pid'),
    errorLog: join(prefix, 'error.log'),
  };
}
