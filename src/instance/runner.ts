import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import type { AppSettings } from './app-env.js';
import { listenerInGroup } from './listener.js';
import { readPidfile, writePidfile, type InstanceRecord, type Revision, type StopOutcome } from './pidfile.js';
import { ProcessRunner, type ExitStatus } from './process-runner.js';
import { isSameProcessAlive } from './process-identity.js';
import { SystemdRunner } from './systemd-runner.js';

export type { ExitStatus, InstanceRecord, Revision, StopOutcome };

/**
 * Start, stop and find a color: one implementation per `runner`, `process` (detached process
 * groups duet signals itself, process-runner.ts) or `systemd` (a unit per color in the service
 * user's systemd, systemd-runner.ts). Everything above -- deploy, rollback, bootup, supervision,
 * status, the CLI -- talks to this interface and is the same for both.
 */
export interface Runner {
  /** The running instance of a color, or undefined. */
  running(color: Color): Promise<InstanceRecord | undefined>;
  /**
   * Start a color at `revision`. Idempotent: a color that already runs is left alone. A port (or
   * socket) held by a process duet did not start is refused, not fought over.
   */
  start(color: Color, revision: Revision, settings?: AppSettings): Promise<InstanceRecord>;
  /**
   * Stop a color; stopping one that does not run is harmless. `restarting`: another process of
   * the color follows at once, and a socket duet holds (socket_activation) stays, queueing
   * connections for it; any other stop lets the socket go.
   */
  stop(color: Color, options?: { restarting?: boolean }): Promise<StopOutcome>;
  /**
   * How an instance that is gone ended, when that can be known; undefined for a process started
   * by another duet process, or when systemd has already restarted it.
   */
  exitStatus(instance: InstanceRecord): Promise<ExitStatus | undefined>;
  /** Resolves when a process this duet started exits; undefined when its exit cannot be awaited. */
  whenExited(pid: number): Promise<ExitStatus> | undefined;
  /** Resolves once the runner can start colors (at boot, a user's systemd may come up late). */
  ready(): Promise<void>;
  /** The color's output since its last start, or its last journal lines. */
  outputTail(color: Color): Promise<string>;
  /** Where the operator reads a color's output. */
  outputHint(color: Color): string;
  /** The runner brings a crashed color back itself (systemd's Restart=): duet serve only counts. */
  readonly restartsCrashed: boolean;
  /**
   * A dead color traffic left by a failover: end the restarts the runner does on its own, keeping
   * the color's record (it is down, not stopped). Only a runner with restartsCrashed has any.
   */
  endRestarts?(color: Color): Promise<void>;
}

const runners = new WeakMap<AppConfig, Runner>();

/** The app's runner, chosen once per loaded app by its `runner`. */
export function runnerOf(app: AppConfig): Runner {
  let runner = runners.get(app);
  if (!runner) {
    runner = app.runner === 'systemd' ? new SystemdRunner(app) : new ProcessRunner(app);
    runners.set(app, runner);
  }
  return runner;
}

/**
 * The app's own process: the one of the color's process group that listens on its port or
 * socket, else (not listening yet) the one duet, or systemd, started. systemd makes each unit's
 * main process a group leader, so a unit's `sh -c 'npm start'` is found through its group too.
 * With app_user the app's /proc/<pid>/fd are not duet's to read: the main pid it is then.
 */
export function appPid(app: AppConfig, color: Color, instance: InstanceRecord): number {
  return listenerInGroup(instance.pid, app.endpoints[color]) ?? instance.pid;
}

/**
 * Note on the instance's record when it went live, once: a deploy re-run after a crash during
 * the watch goes on watching from there instead of starting over. Returns that moment.
 */
export async function markLive(app: AppConfig, instance: InstanceRecord, at = new Date()): Promise<Date> {
  if (instance.liveSince) return new Date(instance.liveSince);
  const record = await readPidfile(app.paths.pidfile[instance.color as Color]);
  if (record && record.pid === instance.pid && record.startTime === instance.startTime) {
    await writePidfile(app.paths.pidfile[instance.color as Color], { ...record, liveSince: at.toISOString() });
  }
  return at;
}

/**
 * For waitUntilHealthy: whether the instance that was started is still the one running. One
 * /proc read per probe, whichever the runner (asking systemctl each time would cost a process
 * per probe); a color that systemd restarted after a crash is a new process, and counts as died.
 */
export function stillRunning(instance: InstanceRecord | undefined): () => Promise<boolean> {
  return async () => instance !== undefined && (await isSameProcessAlive(instance));
}

/** "exited with code 1", "was killed by SIGKILL", or "exited" when the status is unknown. */
export function describeExit(status: ExitStatus | undefined): string {
  if (status?.signal) return `was killed by ${status.signal}`;
  if (status && status.code !== null) return `exited with code ${status.code}`;
  return 'exited';
}
