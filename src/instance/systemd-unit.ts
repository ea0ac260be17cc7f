import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { constants } from 'node:os';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError, type StepName } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { pollUntil } from '../util/poll.js';
import { lastLines, runArgv } from '../util/run.js';
import { appProcessEnv, type EnvFiles } from './app-env.js';

/**
 * `runner: systemd`: each color runs as duet-app@<app>-<color>.service. systemd restarts a crashed
 * color and journald keeps its output. Which systemd depends on `app_user`:
 * - unset: the service user's own systemd instance (`systemctl --user`, kept running without a
 *   login by `loginctl enable-linger`), template /etc/systemd/user/duet-app@.service. No root, no
 *   polkit rule, but the app runs as duet's own uid.
 * - set: the system's systemd, template /etc/systemd/system/duet-app@.service with
 *   User=<app_user>. duet starts and stops those units, and only those, through the polkit rule
 *   `duet install` writes (polkit.ts): PID 1 switches the user, so duet itself needs no privilege.
 */

/** Which systemd runs the app units: the system's (app_user set) or the service user's own. */
type UnitScope = 'system' | 'user';

export function unitScope(app: Pick<AppConfig, 'appUser'>): UnitScope {
  return app.appUser === undefined ? 'user' : 'system';
}

const scopeFlag = (scope: UnitScope): string[] => (scope === 'user' ? ['--user'] : []);

/**
 * The unit of one color. The instance is the systemd-escaped path "<app>/<color>" (`/` becomes
 * `-`, a literal `-` becomes `\x2d`), so the unit template gets the app and color back with %I
 * and can name the checkout directly: WorkingDirectory=<state_dir>/%I. App names are
 * [a-z0-9-], so `-` is the only character that needs escaping.
 */
export function appUnitName(app: string, color: Color): string {
  if (!/^[a-z0-9-]+$/.test(app)) throw new Error(`appUnitName: ${JSON.stringify(app)} is not an app name`);
  return `duet-app@${app.replaceAll('-', '\\x2d')}-${color}.service`;
}

/**
 * socket_activation: the color's socket unit, paired with its service by name. systemd holds the
 * socket (ListenStream= the color's socket path) and hands it to the app as fd 3; while the
 * service restarts, connections wait in it.
 */
export function appSocketUnitName(app: string, color: Color): string {
  return appUnitName(app, color).replace(/\.service$/, '.socket');
}

/**
 * The units a start or stop acts on: with socket_activation the socket first (a start orders it
 * before the service anyway), and a restart's stop leaves it listening, queueing connections for
 * the next process.
 */
function colorUnits(app: Pick<AppConfig, 'name' | 'socket_activation'>, color: Color, verb: 'start' | 'stop', restarting = false): string[] {
  const service = appUnitName(app.name, color);
  if (!app.socket_activation || (verb === 'stop' && restarting)) return [service];
  return [appSocketUnitName(app.name, color), service];
}

/** EnvironmentFile=<state_dir>/%I.env of the unit template: <state_dir>/<app>/<color>.env. */
export function instanceEnvPath(app: AppConfig, color: Color): string {
  return join(app.paths.root, `${color}.env`);
}

/**
 * The environment the unit starts the color with: what a detached instance gets, plus
 * DUET_START, the operator's start command, which the unit runs as `/bin/sh -c ${DUET_START}`.
 * With app_user the env files' values are not here: systemd reads those files itself (the
 * drop-in duet install writes), and this file's assignments, read after them, win.
 * Values are double-quoted with \ " ` $ escaped, the quoting systemd's EnvironmentFile= parser
 * undoes; a line break would end the assignment, so it is refused.
 */
export function renderInstanceEnv(app: AppConfig, color: Color, revision: { sha: string; ref: string }, files: EnvFiles): string {
  const vars: Record<string, string> = { ...appProcessEnv(app, color, revision, files), DUET_START: app.start };
  const lines = ['# Written by duet before each start of this color; read by duet-app@.service.'];
  for (const [name, value] of Object.entries(vars)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new DuetError(`apps.${app.name}.env: ${JSON.stringify(name)} is not a variable name systemd accepts`, { step: 'start' });
    }
    if (/[\r\n\0]/.test(value)) {
      throw new DuetError(`${name} of ${app.name} spans lines, which an EnvironmentFile= cannot hold`, {
        step: 'start',
        hint: 'use runner: process for this app, or a start command on one line',
      });
    }
    lines.push(`${name}="${value.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`);
  }
  return `${lines.join('\n')}\n`;
}

/** How the unit's main process last ended, when systemd knows (ExecMainCode/ExecMainStatus). */
interface UnitExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What `systemctl show` says about a unit, reduced to what duet asks. */
interface UnitState {
  active: boolean;
  pid: number | undefined;
  activeState: string;
  subState: string;
  lastExit: UnitExit | undefined;
}

const SHOW_PROPERTIES = ['ActiveState', 'SubState', 'MainPID', 'ExecMainPID', 'ExecMainCode', 'ExecMainStatus'] as const;

/** siginfo's si_code for ExecMainCode: the process exited, or a signal killed it (with or without a core). */
const CLD_EXITED = 1;

function parseExit(props: Map<string, string>): UnitExit | undefined {
  const pid = Number(props.get('ExecMainPID') ?? 0);
  const how = Number(props.get('ExecMainCode') ?? 0);
  const status = Number(props.get('ExecMainStatus') ?? 0);
  if (!(pid > 0) || !(how > 0)) return undefined;
  if (how === CLD_EXITED) return { pid, code: status, signal: null };
  const signal = Object.entries(constants.signals).find(([, number]) => number === status)?.[0] as NodeJS.Signals | undefined;
  return { pid, code: null, signal: signal ?? null };
}

export function parseShow(text: string): UnitState {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const activeState = props.get('ActiveState') ?? 'unknown';
  const pid = Number(props.get('MainPID') ?? 0);
  return {
    activeState,
    subState: props.get('SubState') ?? 'unknown',
    // "activating" (auto-restart after a crash) is not running: the health check must wait.
    active: activeState === 'active',
    pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
    lastExit: parseExit(props),
  };
}

/** The argv of one systemctl call; exported so tests and doctor show the same. */
export function systemctlArgv(
  verb: 'start' | 'stop' | 'show',
  app: string | Pick<AppConfig, 'name' | 'socket_activation'>,
  color: Color,
  scope: UnitScope = 'user',
  o: { restarting?: boolean } = {},
): string[] {
  const subject = typeof app === 'string' ? { name: app, socket_activation: false } : app;
  const systemctl = ['systemctl', ...scopeFlag(scope)];
  if (verb === 'show') return [...systemctl, 'show', `--property=${SHOW_PROPERTIES.join(',')}`, appUnitName(subject.name, color)];
  return [...systemctl, verb, ...colorUnits(subject, color, verb, o.restarting)];
}

/**
 * systemctl finds the user's manager through XDG_RUNTIME_DIR. A login session sets it; `sudo -u
 * duet duet deploy` and a system unit do not, so it defaults to where logind puts it.
 */
function userManagerEnv(): Record<string, string> {
  return { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR || `/run/user/${process.getuid?.() ?? 0}` };
}

const MANAGER_HINT =
  "is the service user's systemd running? `loginctl enable-linger <user>` starts it at boot (duet install does that), and `systemctl --user` needs XDG_RUNTIME_DIR=/run/user/<uid>";

const POLKIT_HINT =
  'duet starts and stops its app units through the polkit rule duet install writes (/etc/polkit-1/rules.d/50-duet.rules): is polkitd installed (apt install polkitd), and was duet install run after app_user was set?';

async function systemctl(argv: string[], step: StepName, scope: UnitScope): Promise<string> {
  if (scope === 'system') return runArgv(argv, { step, timeoutMs: 90_000, hint: POLKIT_HINT });
  return runArgv(argv, { step, env: userManagerEnv(), timeoutMs: 90_000, hint: MANAGER_HINT });
}

/**
 * At boot, duet-bootup.service may run before logind has started the service user's systemd
 * (lingering starts it, but in no order with other units): wait for its socket.
 */
export async function waitForUserManager(timeoutMs = 90_000): Promise<void> {
  const socket = join(userManagerEnv().XDG_RUNTIME_DIR!, 'systemd', 'private');
  const up = await pollUntil(async () => (existsSync(socket) ? true : undefined), { timeoutMs, initialIntervalMs: 50, maxIntervalMs: 1000 });
  if (!up) throw new DuetError(`the service user's systemd did not come up within ${timeoutMs / 1000} s (no ${socket})`, { step: 'start', hint: MANAGER_HINT });
}

export async function unitState(app: AppConfig, color: Color): Promise<UnitState> {
  return parseShow(await systemctl(systemctlArgv('show', app.name, color, unitScope(app)), 'status', unitScope(app)));
}

/**
 * Write the environment file, then start the unit. `systemctl start` of a Type=simple unit
 * returns once the process is forked; whether it stays up is for the health check to see.
 */
export async function startUnit(app: AppConfig, color: Color, revision: { sha: string; ref: string }, files: EnvFiles): Promise<UnitState> {
  const envPath = instanceEnvPath(app, color);
  await mkdir(app.paths.root, { recursive: true });
  // 0600: the app's env may hold its own secrets; only the service user reads it.
  await writeFileAtomic(envPath, renderInstanceEnv(app, color, revision, files), 0o600);
  await systemctl(systemctlArgv('start', app, color, unitScope(app)), 'start', unitScope(app));
  return unitState(app, color);
}

/**
 * Stop the unit whatever its state: a color that crashed is "activating" (auto-restart) or
 * "failed", and systemd would bring it back later unless it is stopped. systemd sends SIGTERM to
 * every process of the unit and SIGKILL after its TimeoutStopSec. With socket_activation the
 * socket unit stops too (a connection to it would start the service again), unless another
 * process of the color follows at once (`restarting`).
 */
export async function stopUnit(app: AppConfig, color: Color, o: { restarting?: boolean } = {}): Promise<void> {
  await systemctl(systemctlArgv('stop', app, color, unitScope(app), o), 'stop', unitScope(app));
}

/**
 * The color's last lines in the journal, or '' when journald has none (or is not readable: a
 * system unit's lines need the systemd-journal group, which duet install gives the service user).
 */
export async function unitLogTail(app: AppConfig, color: Color, lines = 20): Promise<string> {
  const scope = unitScope(app);
  const argv = ['journalctl', ...scopeFlag(scope), '--unit', appUnitName(app.name, color), '--lines', String(lines), '--output', 'cat', '--no-pager'];
  try {
    const env = scope === 'user' ? userManagerEnv() : undefined;
    return lastLines(await runArgv(argv, { step: 'health', env, timeoutMs: 5000 }), lines).trim();
  } catch {
    return '';
  }
}

export function unitLogHint(app: AppConfig, color: Color): string {
  return ['journalctl', ...scopeFlag(unitScope(app)), '-u', `'${appUnitName(app.name, color)}'`].join(' ');
}
