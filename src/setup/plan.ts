import { readdir } from 'node:fs/promises';
import { join, relative, isAbsolute } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { switchOf } from '../switch/switch.js';
import { renderTemplateFile } from '../switch/templates.js';
import {
  APP_SOCKET_TEMPLATE,
  APP_UNIT_TEMPLATE,
  JOURNAL_GROUP,
  LINGER_DIR,
  POLKIT_RULES_FILE,
  SITE_FILE,
  SUDOERS_FILE,
  UNIT_DIR,
  USER_UNIT_DIR,
  appUserHome,
  underRoot,
  type InstallLayout,
} from './layout.js';
import type { SetupConfig } from './settings.js';
import { renderSudoers, sudoersCommands } from './sudoers.js';
import { ENABLED_UNITS, STEP_UNITS, appStepUnits, renderActivationDropIns, renderEnvDropIns, renderPolkitRule, renderUnits } from './units.js';

/** The app units' templates: each is absent where the other runner or scope puts it. */
const APP_UNITS = [APP_UNIT_TEMPLATE, APP_SOCKET_TEMPLATE];

export interface Owner {
  user: string;
  group: string;
}

/**
 * Which follow-up a change of the file needs: units a daemon-reload (of the system's systemd, or
 * the service user's for user units), nginx files a test and reload, the linger file a start of
 * the user's systemd.
 */
export type Role = 'config' | 'unit' | 'user-unit' | 'nginx' | 'sudoers' | 'linger' | 'polkit';

export type Entry =
  /** enforce: an existing directory gets this mode and owner too; otherwise it is only created. */
  | { kind: 'dir'; path: string; mode: number; owner: Owner; enforce: boolean }
  /**
   * keep: an existing file keeps its content (the operator's duet.yml); keepIf: an existing file
   * keeps its content when this says so (a port-mode app conf is duet's live state). enforce
   * false: an existing file's mode and owner are left alone too.
   */
  | {
      kind: 'file';
      path: string;
      mode: number;
      owner: Owner;
      content: string;
      role: Role;
      keep?: boolean;
      enforce?: boolean;
      keepIf?: (current: string) => boolean;
      note?: string;
    }
  | { kind: 'absent'; path: string; role: Role; note: string };

/** app_user: the apps' system user, created with the service user's group as its own. */
interface AppUser {
  name: string;
  home: string;
  group: string;
}

/**
 * What a finished install looks like, independent of what is on disk now: the directories and
 * files with their modes and owners, files that must not exist, and the commands that follow
 * changes. apply.ts compares it with the disk and does (or, with --dry-run, prints) the rest.
 */
export interface DesiredState {
  user: string;
  /** The service user's home: the state dir (SSH deploy keys go in <state_dir>/.ssh). */
  home: string;
  appUser: AppUser | undefined;
  /** Groups the service user must be in besides its own. */
  groups: string[];
  entries: Entry[];
  /** Run (as root) after any nginx file changed; undefined with a managed nginx. */
  nginx: { test: string[]; reload: string[] } | undefined;
  enable: string[];
  /** Started after a unit changed: the apps' own step sockets, which an install may have just added. */
  start: string[];
  /** sudoers content to validate with visudo before it is written. */
  sudoers: string | undefined;
  /** The duet.yml install is for, and the state dir where a running duet serve says which one it loaded. */
  serve: { digest: string; stateDir: string };
}

const root = (): Owner => ({ user: 'root', group: 'root' });

export async function desiredState(setup: SetupConfig, layout: InstallLayout, rootDir: string, starter: string): Promise<DesiredState> {
  const { config, user } = setup;
  const socketApps = [...config.apps.values()].filter((app) => app.switch === 'socket');
  const entries = directoryEntries(setup, layout, starter, socketApps.length > 0);

  let nginx: DesiredState['nginx'];
  if (!config.nginx.managed) {
    entries.push(...(await nginxEntries(setup, layout, socketApps)));
    nginx = { test: config.nginx.testCmd, reload: config.nginx.reloadCmd };
  }

  const commands = sudoersCommands(setup);
  const sudoers = commands ? renderSudoers(setup, layout, commands) : undefined;
  entries.push(
    sudoers
      ? { kind: 'file', path: SUDOERS_FILE, mode: 0o440, owner: root(), content: sudoers, role: 'sudoers' }
      : { kind: 'absent', path: SUDOERS_FILE, role: 'sudoers', note: 'nothing needs root: no sudoers drop-in' },
  );

  const stepUnits = appStepUnits(setup);
  entries.push(...(await unitEntries(setup, layout, rootDir, stepUnits)));
  const appUser = setup.appUser === undefined ? undefined : { name: setup.appUser, home: appUserHome(setup.appUser), group: user };
  entries.push(...(await runnerEntries(setup, appUser)));
  // The app units' output is in the system journal then, which only this group (and root) may read.
  const groups = appUser ? [JOURNAL_GROUP] : [];
  const serve = { digest: config.digest, stateDir: config.stateDir };
  return { user, home: config.stateDir, appUser, groups, entries, nginx, enable: ENABLED_UNITS, start: stepUnits.map((unit) => unit.socket), sudoers, serve };
}

/** duet's own directories and the starter config. */
function directoryEntries(setup: SetupConfig, layout: InstallLayout, starter: string, sockets: boolean): Entry[] {
  const { config, user } = setup;
  const own: Owner = { user, group: user };
  const managedEtc = layout.configDir === '/etc/duet';
  const entries: Entry[] = [
    { kind: 'dir', path: layout.configDir, mode: 0o750, owner: { user: 'root', group: user }, enforce: managedEtc },
    {
      kind: 'file',
      path: layout.configFile,
      mode: 0o640,
      owner: { user: 'root', group: user },
      content: starter,
      role: 'config',
      keep: true,
      enforce: managedEtc,
      note: 'starter config',
    },
    { kind: 'dir', path: layout.credentialsDir, mode: 0o700, owner: root(), enforce: true },
  ];
  // nginx's workers (www-data) pass through state_dir to reach the sockets (socket mode) and, with
  // tls, the ACME webroot (<state_dir>/acme/<app>) they serve. o+x without o+r lets them pass, not list.
  const tlsApps = [...config.apps.values()].filter((app) => app.tls.mode !== 'off');
  entries.push({ kind: 'dir', path: config.stateDir, mode: sockets || tlsApps.length ? 0o711 : 0o750, owner: own, enforce: true });
  if (tlsApps.length) entries.push({ kind: 'dir', path: join(config.stateDir, 'acme'), mode: 0o755, owner: own, enforce: true });
  for (const app of tlsApps) entries.push({ kind: 'dir', path: app.paths.acmeWebroot, mode: 0o755, owner: own, enforce: true });
  for (const app of config.apps.values()) {
    // Created only: duet manages these itself afterwards (makeSocketReachable adds o+x).
    entries.push({ kind: 'dir', path: app.paths.root, mode: 0o750, owner: own, enforce: false });
    entries.push({ kind: 'dir', path: join(app.paths.root, 'logs'), mode: 0o750, owner: own, enforce: false });
  }
  return entries;
}

/** Without a managed nginx: duet's include dir, the site file including it, the socket apps' confs. */
async function nginxEntries(setup: SetupConfig, layout: InstallLayout, socketApps: AppConfig[]): Promise<Entry[]> {
  const own: Owner = { user: setup.user, group: setup.user };
  const confDir = setup.config.nginx.confDir;
  checkIncludeDir(confDir);
  const site = await renderTemplateFile('duet-site.conf.template', { conf_dir: confDir, config_file: layout.configFile });
  const entries: Entry[] = [
    { kind: 'dir', path: confDir, mode: 0o750, owner: own, enforce: true },
    { kind: 'file', path: SITE_FILE, mode: 0o644, owner: root(), content: site, role: 'nginx' },
  ];
  for (const app of socketApps) {
    // Color-independent in socket mode, so written now: the first switch finds it in place and
    // needs no reload. A port-mode file there (the app changed mode) is live state: left alone.
    entries.push({
      kind: 'file',
      path: join(confDir, `duet-${app.name}.conf`),
      mode: 0o644,
      owner: own,
      content: await switchOf(app).renderConf('blue'),
      role: 'nginx',
      keepIf: (current) => !/^\s*proxy_pass\s+http:\/\/unix:/m.test(current),
    });
  }
  return entries;
}

/** duet's units, the apps' step units (and those no app wants any more), the drop-ins. */
async function unitEntries(setup: SetupConfig, layout: InstallLayout, rootDir: string, stepUnits: ReturnType<typeof appStepUnits>): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (const unit of await renderUnits(setup, layout, rootDir)) {
    const role = unit.path.startsWith(`${USER_UNIT_DIR}/`) ? 'user-unit' : 'unit';
    entries.push({ kind: 'file', path: unit.path, mode: 0o644, owner: root(), content: unit.content, role });
  }
  for (const name of await unwantedStepUnits(rootDir, new Set(stepUnits.flatMap((unit) => [unit.socket, unit.service])))) {
    entries.push({ kind: 'absent', path: join(UNIT_DIR, name), role: 'unit', note: 'no app with env_files by that name (with app_user)' });
  }
  for (const dropIn of renderEnvDropIns(setup)) {
    entries.push(
      dropIn.content === undefined
        ? { kind: 'absent', path: dropIn.path, role: 'unit', note: 'no env_files for this app' }
        : { kind: 'file', path: dropIn.path, mode: 0o644, owner: root(), content: dropIn.content, role: 'unit' },
    );
  }
  for (const dropIn of renderActivationDropIns(setup)) {
    const role = dropIn.path.startsWith(`${USER_UNIT_DIR}/`) ? 'user-unit' : 'unit';
    entries.push(
      dropIn.content === undefined
        ? { kind: 'absent', path: dropIn.path, role, note: 'no socket_activation for this app' }
        : { kind: 'file', path: dropIn.path, mode: 0o644, owner: root(), content: dropIn.content, role },
    );
  }
  return entries;
}

/** Where the app units run: the app user's home and polkit rule, or the service user's systemd. */
async function runnerEntries(setup: SetupConfig, appUser: AppUser | undefined): Promise<Entry[]> {
  const { user } = setup;
  const entries: Entry[] = [];
  if (appUser) {
    entries.push({ kind: 'dir', path: appUser.home, mode: 0o700, owner: { user: appUser.name, group: user }, enforce: true });
    const rule = await renderPolkitRule(setup);
    entries.push({
      kind: 'file',
      path: POLKIT_RULES_FILE,
      mode: 0o644,
      owner: root(),
      content: rule,
      role: 'polkit',
      note: `${user} starts and stops the app units`,
    });
    for (const unit of APP_UNITS)
      entries.push({ kind: 'absent', path: join(USER_UNIT_DIR, unit), role: 'user-unit', note: 'with app_user the app units are system units' });
  } else {
    entries.push({ kind: 'absent', path: POLKIT_RULES_FILE, role: 'polkit', note: 'no app_user: nothing for polkit to allow' });
    // Where app_user puts it, and where duet before 0.2 did (a system unit started through sudo).
    for (const unit of APP_UNITS) entries.push({ kind: 'absent', path: join(UNIT_DIR, unit), role: 'unit', note: 'app units are user units without app_user' });
    for (const unit of STEP_UNITS)
      entries.push({ kind: 'absent', path: join(UNIT_DIR, unit), role: 'unit', note: 'installs and builds run as duet without app_user' });
  }
  // With app_user the system's systemd runs the app units: the user's own is not needed for them.
  if (setup.runner === 'systemd' && !appUser) {
    // What `loginctl enable-linger` writes: the user's systemd starts at boot, not at a login.
    // Left in place when the runner changes back: the operator may rely on it for more.
    const linger = join(LINGER_DIR, user);
    entries.push({ kind: 'file', path: linger, mode: 0o644, owner: root(), content: '', role: 'linger', note: `${user}'s systemd runs the app units` });
  } else if (setup.runner === 'process') {
    for (const unit of APP_UNITS)
      entries.push({ kind: 'absent', path: join(USER_UNIT_DIR, unit), role: 'user-unit', note: 'runner: process needs no app units' });
  }
  return entries;
}

/** An app's own step units (appStepUnits) on the machine that no app of today wants: it lost its env_files, app_user went, or the app. */
async function unwantedStepUnits(rootDir: string, wanted: Set<string>): Promise<string[]> {
  const present = await readdir(underRoot(rootDir, UNIT_DIR)).catch(() => [] as string[]);
  return present.filter((name) => /^duet-step-[a-z0-9-]+(\.socket|@\.service)$/.test(name) && !wanted.has(name));
}

/**
 * The include dir must be duet's own: inside /etc/nginx, duet would need write access there,
 * and the site's `include <dir>/*.conf` placed in that same directory would include itself.
 */
function checkIncludeDir(confDir: string): void {
  const inside = relative('/etc/nginx', confDir);
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    throw new ConfigError(
      `nginx.conf_dir is ${confDir}: duet would need write access to /etc/nginx`,
      'set nginx.conf_dir to a directory of its own, e.g. /etc/duet/nginx.d; duet install includes it from /etc/nginx/conf.d/duet.conf',
    );
  }
}
