import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { endpointOf, endpointText } from '../instance/endpoint.js';
import type { Revision } from '../instance/runner.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/**
 * `runner: systemd`: each color runs as duet-app@<app>-<color>.service, so systemd restarts a
 * crashed instance and journald keeps its output. This module is what duet needs to drive those
 * units -- their names, the environment file the unit reads, the systemctl argument arrays and
 * the parsing of `systemctl show` -- behind a small interface with the command execution
 * injected. It is NOT wired into the deploy pipeline yet (src/instance/runner.ts stays the only
 * runner the pipeline calls), and live supervision is untested: the test machine has no
 * systemd as PID 1.
 */

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

/** EnvironmentFile=<state_dir>/%I.env of the unit template: <state_dir>/<app>/<color>.env. */
export function instanceEnvPath(stateDir: string, app: string, color: Color): string {
  return join(stateDir, app, `${color}.env`);
}

/**
 * The environment the unit starts the color with: what runner.ts gives a detached instance, plus
 * DUET_START, the operator's start command, which the unit runs as `/bin/sh -c ${DUET_START}`.
 * Values are double-quoted with \ " ` $ escaped, the quoting systemd's EnvironmentFile= parser
 * undoes; a line break would end the assignment, so it is refused.
 */
export function renderInstanceEnv(app: AppConfig, color: Color, revision: Revision): string {
  const vars: Record<string, string> = {
    ...app.env,
    PORT: endpointText(endpointOf(app, color)),
    HOST: '127.0.0.1',
    DUET_COLOR: color,
    DUET_REVISION: revision.sha,
    DUET_REF: revision.ref,
    DUET_START: app.start,
  };
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

/** What `systemctl show` says about a unit, reduced to what duet asks. */
export interface UnitState {
  active: boolean;
  pid: number | undefined;
  activeState: string;
  subState: string;
}

export const SHOW_PROPERTIES = ['ActiveState', 'SubState', 'MainPID'] as const;

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
  };
}

/** Runs one argument array and returns its stdout; throws on a non-zero exit. */
export type Exec = (argv: string[]) => Promise<string>;

export interface SystemdRunnerOptions {
  stateDir: string;
  /** Absolute path of systemctl; the same path the sudoers drop-in names. */
  systemctl: string;
  /** Start and stop through `sudo -n` (the service user may not manage units itself). */
  sudo: boolean;
  exec: Exec;
}

export class SystemdRunner {
  constructor(private readonly options: SystemdRunnerOptions) {}

  /** The argv for a state-changing verb; exactly what the sudoers drop-in allows. */
  verbArgv(verb: 'start' | 'stop' | 'restart', app: string, color: Color): string[] {
    const argv = [this.options.systemctl, verb, appUnitName(app, color)];
    return this.options.sudo ? ['sudo', '-n', ...argv] : argv;
  }

  /** Reading needs no privilege, so it never goes through sudo. */
  showArgv(app: string, color: Color): string[] {
    return [this.options.systemctl, 'show', `--property=${SHOW_PROPERTIES.join(',')}`, appUnitName(app, color)];
  }

  /** Writes the environment file, then starts the unit (a no-op for systemd when it runs). */
  async start(app: AppConfig, color: Color, revision: Revision): Promise<UnitState> {
    const envPath = instanceEnvPath(this.options.stateDir, app.name, color);
    await mkdir(dirname(envPath), { recursive: true });
    // 0600: the app's env may hold its own secrets; only the service user reads it.
    await writeFileAtomic(envPath, renderInstanceEnv(app, color, revision), 0o600);
    await this.options.exec(this.verbArgv('start', app.name, color));
    return this.state(app.name, color);
  }

  async stop(app: string, color: Color): Promise<void> {
    await this.options.exec(this.verbArgv('stop', app, color));
  }

  async state(app: string, color: Color): Promise<UnitState> {
    return parseShow(await this.options.exec(this.showArgv(app, color)));
  }
}
