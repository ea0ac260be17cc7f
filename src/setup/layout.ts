import { existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { packageRoot } from '../switch/templates.js';
import type { SetupConfig } from './settings.js';

/**
 * Where `duet install` puts things, as the machine sees them (before --root is prepended).
 * Fixed paths rather than settings: they are the places systemd, sudo and nginx look in.
 */
export const UNIT_DIR = '/etc/systemd/system';
export const WANTS_DIR = `${UNIT_DIR}/multi-user.target.wants`;
/** Units for users' own systemd instances; duet-app@.service (runner: systemd) goes here. */
export const USER_UNIT_DIR = '/etc/systemd/user';
/** A file named for a user here keeps that user's systemd running without a login (loginctl enable-linger). */
export const LINGER_DIR = '/var/lib/systemd/linger';
export const SUDOERS_FILE = '/etc/sudoers.d/duet';
/** app_user: what lets the service user start and stop the apps' system units (polkitd reads the directory). */
export const POLKIT_RULES_FILE = '/etc/polkit-1/rules.d/50-duet.rules';
/** app_user: the apps' system units log to the system journal, which this group may read. */
export const JOURNAL_GROUP = 'systemd-journal';
/** conf.d rather than sites-enabled: both Debian's and nginx.org's nginx.conf include conf.d/*.conf. */
export const SITE_FILE = '/etc/nginx/conf.d/duet.conf';
export const DEFAULT_CONFIG = '/etc/duet/duet.yml';

export const SERVICE_UNIT = 'duet.service';
export const BOOTUP_UNIT = 'duet-bootup.service';
export const APP_UNIT_TEMPLATE = 'duet-app@.service';
/** runner: systemd: the colors' sockets of the apps with socket_activation, beside duet-app@.service. */
export const APP_SOCKET_TEMPLATE = 'duet-app@.socket';

/** The secret files systemd hands to `duet serve` (LoadCredential=), and the variables naming them. */
export const CREDENTIALS = [
  { file: 'webhook-secret', env: 'DUET_WEBHOOK_SECRET', required: true },
  { file: 'api-token', env: 'DUET_API_TOKEN', required: false },
  { file: 'github-token', env: 'DUET_GITHUB_TOKEN', required: false },
] as const;

export interface InstallLayout {
  configFile: string;
  configDir: string;
  credentialsDir: string;
}

/** app_user's home, the one place of its own the app may write (0700: nobody else reads it). */
export function appUserHome(appUser: string): string {
  return `/var/lib/${appUser}`;
}

export function installLayout(configFile: string): InstallLayout {
  const configDir = dirname(configFile);
  return { configFile, configDir, credentialsDir: join(configDir, 'credentials') };
}

/** Prepend --root to a machine path (join keeps it inside the root). */
export function underRoot(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

/**
 * Reloads go through the system nginx only in port mode: a socket-mode switch renames a symlink,
 * and a managed nginx belongs to duet's own user.
 */
function needsNginxReload(setup: SetupConfig): boolean {
  if (setup.config.nginx.managed) return false;
  return [...setup.config.apps.values()].some((app) => app.switch === 'port');
}

/**
 * Whether the service runs anything as root (nginx -t and reload): that costs hardening.
 * `runner: systemd` does not: the app units run in the service user's own systemd, or, with
 * app_user, in the system's through a polkit rule.
 */
export function needsRootCommands(setup: SetupConfig): boolean {
  return needsNginxReload(setup);
}

/** Through sudo, unless the service user is root already. */
export function needsSudo(setup: SetupConfig): boolean {
  return setup.user !== 'root' && needsRootCommands(setup);
}

/**
 * Node flags for the long-running `duet serve` (and the units):
 * - a 1 MB young generation instead of 16 MB. duet serve is idle nearly always and handles small
 *   requests when not; smaller semi-spaces mean more, cheaper scavenges and less resident memory;
 * - --single-threaded-gc: V8 collects on the main thread only, instead of handing parts of each
 *   collection to background threads that, on the one or two cores of a small server, wait for
 *   the CPU behind the app and everything else: a lower webhook p99, for a heap that grows further
 *   under a sustained stream of deliveries, given back once idle;
 * - --expose-gc, for the one collection serve runs once started (releaseStartupGarbage) and the
 *   one after a flood of large bodies (giveMemoryBack): what serve loaded and threw away is
 *   freed at once, not later.
 * The figures: docs/serve.md, "Memory", and bench/README.md, section 8. The benchmark starts duet
 * serve with the same flags.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded-gc', '--expose-gc'];

/** What ExecStart= runs: this very node and this very duet, so an upgrade in place keeps working. */
export function duetCommand(): { node: string; main: string; nodeFlags: readonly string[] } {
  return { node: process.execPath, main: join(packageRoot(), 'dist', 'bin', 'duet.mjs'), nodeFlags: SERVE_NODE_FLAGS };
}

/** A program's absolute path from PATH (plus the sbin dirs root has), or the fallback. */
export function findProgram(name: string, fallback: string, path = process.env.PATH ?? ''): string {
  for (const dir of [...path.split(delimiter), '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return fallback;
}
