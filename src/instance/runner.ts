import { chmod, mkdir, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { appSettings, startedWith, type AppSettings } from './app-env.js';
import { endpointOf, endpointText, isListening } from './endpoint.js';
import { listenerInGroup } from './listener.js';
import { heldListener, releaseListener } from './listener-hold.js';
import { readPidfile, removePidfile, writePidfile, type InstanceRecord, type Revision, type StopOutcome } from './pidfile.js';
import { exitOf, processLogTail, runningProcess, startProcess, stopProcess, type ExitStatus } from './process-runner.js';
import { identify, isSameProcessAlive } from './process-identity.js';
import { startUnit, stopUnit, unitLogHint, unitLogTail, unitScope, unitState, waitForUserManager } from './systemd-unit.js';

export type { ExitStatus, InstanceRecord, Revision, StopOutcome };

/**
 * Start, stop and find a color, whichever runner the config names: `process` (detached process
 * groups duet signals itself) or `systemd` (a unit per color in the service user's systemd).
 * Everything above this module -- deploy, rollback, bootup, status, the CLI -- is the same for
 * both.
 */

/** The running instance of a color, or undefined. */
export async function runningInstance(app: AppConfig, color: Color): Promise<InstanceRecord | undefined> {
  if (app.runner === 'process') return runningProcess(app, color);
  const state = await unitState(app, color);
  const identity = state.active && state.pid !== undefined ? await identify(state.pid) : undefined;
  if (!identity) return undefined;
  // The pid is systemd's (it changes when systemd restarts a crashed color); the revision is
  // what duet recorded when it started the unit.
  const record = await readPidfile(app.paths.pidfile[color]);
  const merged: InstanceRecord = { color, sha: 'unknown', ref: 'started outside duet', startedAt: '', ...record, ...identity };
  // A process systemd restarted did not go live; the one that did is gone.
  if (record?.pid !== identity.pid) delete merged.liveSince;
  return merged;
}

/**
 * The app's own process: the one of the color's process group that listens on its port or
 * socket, else (not listening yet) the one duet, or systemd, started. systemd makes each unit's
 * main process a group leader, so a unit's `sh -c 'npm start'` is found through its group too.
 * With app_user the app's /proc/<pid>/fd are not duet's to read: the main pid it is then.
 */
export function appPid(app: AppConfig, color: Color, instance: InstanceRecord): number {
  return listenerInGroup(instance.pid, endpointOf(app, color)) ?? instance.pid;
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
 * Start a color at `revision`. Idempotent: a color that already runs is left alone. A port (or
 * socket) held by a process duet did not start is refused, not fought over.
 */
export async function startInstance(app: AppConfig, color: Color, revision: Revision, given?: AppSettings): Promise<InstanceRecord> {
  const running = await runningInstance(app, color);
  if (running) return running;
  // Read at each start, also a restart by supervision: the process gets the env files as they are now.
  const settings = given ?? (await appSettings(app, 'start'));
  // What the last start left running after its leader died (a kill -9 of the `sh -c`) still
  // holds the port: it is duet's to stop, not a stranger's to refuse over.
  if (app.runner === 'process') await stopProcess(app, color);

  const endpoint = endpointOf(app, color);
  // With socket_activation duet binds the socket itself (startProcess), or its socket unit does
  // (systemd), over whatever the path holds: a socket there that queues connections with no app
  // is one held for the next process, no stranger's.
  const activation = endpoint.kind === 'socket' && app.socket_activation;
  if (!activation && (await isListening(endpoint))) {
    throw new DuetError(`${endpointText(endpoint)} is already taken by a process duet did not start`, {
      step: 'start',
      hint: `find it with \`ss -ltnp\` (or \`ss -lxp\` for sockets) and stop it, or give ${color} another port in the config`,
    });
  }
  if (endpoint.kind === 'socket') {
    const dir = dirname(endpoint.path);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    // app_user: the app, another user of duet's group, creates its socket here.
    if (app.appUser !== undefined) await chmod(dir, ((await stat(dir)).mode & 0o7777) | 0o070);
    // A socket file left by a crashed instance makes listen() fail with EADDRINUSE.
    if (!activation) await unlink(endpoint.path).catch(() => {});
  }
  if (app.runner === 'process') return startProcess(app, color, revision, settings);

  const state = await startUnit(app, color, revision, settings.files);
  const identity = state.pid === undefined ? undefined : await identify(state.pid);
  if (!identity) {
    throw new DuetError(`${color} exited immediately after start (${state.activeState}/${state.subState})`, {
      step: 'start',
      hint: `read its output: ${unitLogHint(app, color)}`,
    });
  }
  const record: InstanceRecord = { ...identity, color, sha: revision.sha, ref: revision.ref, startedAt: new Date().toISOString(), ...startedWith(settings) };
  await writePidfile(app.paths.pidfile[color], record);
  return record;
}

/**
 * Stop a color; stopping one that does not run is harmless. `restarting`: another process of
 * the color follows at once, and a socket duet or systemd holds (socket_activation) stays,
 * queueing connections for it; any other stop lets the socket go.
 */
export async function stopInstance(app: AppConfig, color: Color, o: { restarting?: boolean } = {}): Promise<StopOutcome> {
  let outcome: StopOutcome;
  if (app.runner === 'process') {
    outcome = await stopProcess(app, color);
  } else {
    const running = await runningInstance(app, color);
    await stopUnit(app, color, o);
    await removePidfile(app.paths.pidfile[color]);
    outcome = running ? 'stopped' : 'not-running';
  }
  // The socket held across a restart: duet's (runner: process), or the socket unit's (systemd).
  const held = app.runner === 'systemd' ? app.socket_activation : heldListener(app.paths.socket[color]) !== undefined;
  if (app.switch === 'socket' && !(o.restarting && held)) {
    releaseListener(app.paths.socket[color]);
    await unlink(app.paths.socket[color]).catch(() => {});
  }
  return outcome;
}

/**
 * For waitUntilHealthy: whether the instance that was started is still the one running. One
 * /proc read per probe, whichever the runner (asking systemctl each time would cost a process
 * per probe); a color that systemd restarted after a crash is a new process, and counts as died.
 */
export function stillRunning(instance: InstanceRecord | undefined): () => Promise<boolean> {
  return async () => instance !== undefined && (await isSameProcessAlive(instance));
}

/**
 * How an instance that is gone ended, when that can be known: the exit status of a process this
 * duet started (runner: process), or systemd's record of the unit's last main process. undefined
 * for a process started by another duet process, or when systemd has already restarted it.
 */
export async function exitStatus(app: AppConfig, instance: InstanceRecord): Promise<ExitStatus | undefined> {
  if (app.runner === 'process') {
    const exited = exitOf(instance.pid);
    // Not awaited for long: the process is gone, its exit event is due within milliseconds.
    return exited && (await Promise.race([exited, sleep(100).then(() => undefined)]));
  }
  const last = (await unitState(app, instance.color as Color).catch(() => undefined))?.lastExit;
  return last?.pid === instance.pid ? { code: last.code, signal: last.signal } : undefined;
}

/** Resolves when a process this duet started exits (runner: process); undefined for any other. */
export function whenExited(app: AppConfig, pid: number): Promise<ExitStatus> | undefined {
  return app.runner === 'process' ? exitOf(pid) : undefined;
}

/** "exited with code 1", "was killed by SIGKILL", or "exited" when the status is unknown. */
export function describeExit(status: ExitStatus | undefined): string {
  if (status?.signal) return `was killed by ${status.signal}`;
  if (status && status.code !== null) return `exited with code ${status.code}`;
  return 'exited';
}

/**
 * Wait until the runner can start colors: at boot, the service user's systemd may come up late
 * (the system's is up already: it runs this).
 */
export async function runnerReady(app: AppConfig): Promise<void> {
  if (app.runner === 'systemd' && unitScope(app) === 'user') await waitForUserManager();
}

/** The color's output since its last start (runner: process) or its last journal lines (systemd). */
export function instanceOutputTail(app: AppConfig, color: Color): Promise<string> {
  return app.runner === 'process' ? processLogTail(app, color) : unitLogTail(app, color);
}

/** Where the operator reads a color's output. */
export function instanceOutputHint(app: AppConfig, color: Color): string {
  return app.runner === 'process' ? app.paths.instanceLog[color] : unitLogHint(app, color);
}
