import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import { pollUntil } from '../util/poll.js';
import { inheritedEnv } from '../util/child-env.js';
import { lastLines } from '../util/run.js';
import { appProcessEnv, appSettings, startedWith, type AppSettings } from './app-env.js';
import { claimEndpoint, releaseEndpoint } from './endpoint.js';
import { identify, processGroupAlive, recordedGroupAlive } from './process-identity.js';
import { readLivePidfile, readPidfile, removePidfile, writePidfile, type InstanceRecord, type Revision, type StopOutcome } from './pidfile.js';
import { crashPoint } from '../util/crash-point.js';
import { killGroup } from '../util/step-group.js';
import { heldListener, holdListener } from './listener-hold.js';
import type { Runner } from './runner.js';

/**
 * `runner: process`, the default: each color is a detached process group that duet starts and
 * signals itself, with a pidfile that records pid + start time and the revision it runs. A
 * crashed color stays down until duet serve's supervision restarts it.
 */
export class ProcessRunner implements Runner {
  readonly restartsCrashed = false;

  constructor(private readonly app: AppConfig) {}

  /** The pidfile checked against /proc. */
  running(color: Color): Promise<InstanceRecord | undefined> {
    return readLivePidfile(this.app.paths.pidfile[color]);
  }

  async start(color: Color, revision: Revision, given?: AppSettings): Promise<InstanceRecord> {
    const running = await this.running(color);
    if (running) return running;
    // Read at each start, also a restart by supervision: the process gets the env files as they are now.
    const settings = given ?? (await appSettings(this.app, 'start'));
    // What the last start left running after its leader died (a kill -9 of the `sh -c`) still
    // holds the port: it is duet's to stop, not a stranger's to refuse over.
    await stopProcess(this.app, color);
    await claimEndpoint(this.app, color);
    return startProcess(this.app, color, revision, settings);
  }

  async stop(color: Color, options: { restarting?: boolean } = {}): Promise<StopOutcome> {
    const outcome = await stopProcess(this.app, color);
    // duet holds the socket across a restart only while it binds it (socket_activation).
    await releaseEndpoint(this.app, color, options.restarting === true && heldListener(this.app.paths.socket[color]) !== undefined);
    return outcome;
  }

  /** The exit status of a process this duet started. */
  async exitStatus(instance: InstanceRecord): Promise<ExitStatus | undefined> {
    const exited = exits.get(instance.pid);
    // Not awaited for long: the process is gone, its exit event is due within milliseconds.
    return exited && (await Promise.race([exited, sleep(100).then(() => undefined)]));
  }

  whenExited(pid: number): Promise<ExitStatus> | undefined {
    return exits.get(pid);
  }

  async ready(): Promise<void> {}

  outputTail(color: Color): Promise<string> {
    return processLogTail(this.app, color);
  }

  outputHint(color: Color): string {
    return this.app.paths.instanceLog[color];
  }
}

/** Written to the instance log before each start, so a failure can show only this start's output. */
const START_MARKER = '--- duet: starting ';

/**
 * Start a color detached, in its own session and process group, so it outlives duet (a CLI
 * that exits, a `duet serve` that restarts) and can be stopped as a whole group later.
 */
async function startProcess(app: AppConfig, color: Color, revision: Revision, settings: AppSettings): Promise<InstanceRecord> {
  const logPath = app.paths.instanceLog[color];
  await mkdir(dirname(logPath), { recursive: true });
  const log = await open(logPath, 'a');
  // Never duet's own environment: it holds duet's secrets (see inheritedEnv).
  const env: NodeJS.ProcessEnv = { ...inheritedEnv(), ...appProcessEnv(app, color, revision, settings.files) };
  // socket_activation: the socket duet holds, as fd 3 (systemd's convention, without LISTEN_PID:
  // what duet starts is `sh -c`, and the app is a process further down).
  const endpoint = app.endpoints[color];
  const listener = app.socket_activation && endpoint.kind === 'socket' ? holdListener(endpoint.path) : undefined;
  if (listener !== undefined) Object.assign(env, { LISTEN_FDS: '1', LISTEN_FDNAMES: color });
  try {
    await log.write(`${START_MARKER}${color} at ${revision.sha} (${revision.ref}) on ${new Date().toISOString()} ---\n`);
    const child = spawn('sh', ['-c', app.start], {
      cwd: app.paths.checkout[color],
      detached: true,
      stdio: listener === undefined ? ['ignore', log.fd, log.fd] : ['ignore', log.fd, log.fd, listener],
      env,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    recordExit(pid, child);
    const identity = await identify(pid);
    if (!identity) {
      throw new DuetError(`${color} exited immediately after start`, {
        step: 'start',
        hint: `read its log: ${logPath}`,
      });
    }
    const record: InstanceRecord = { ...identity, color, sha: revision.sha, ref: revision.ref, startedAt: new Date().toISOString(), ...startedWith(settings) };
    await writePidfile(app.paths.pidfile[color], record);
    return record;
  } finally {
    await log.close();
  }
}

/**
 * SIGTERM the color's whole process group (npm start -> sh -> node all go), wait up to
 * `stop_timeout_s`, then SIGKILL. The group is stopped even when its leader is gone (killed -9,
 * or crashed) and others of it still run. A pidfile whose pid was reused is only removed: a
 * process duet did not start is never signalled.
 */
async function stopProcess(app: AppConfig, color: Color): Promise<StopOutcome> {
  const record = await readPidfile(app.paths.pidfile[color]);
  let outcome: StopOutcome = 'not-running';
  if (record && recordedGroupAlive(record)) {
    outcome = 'stopped';
    killGroup(record.pid, 'SIGTERM');
    crashPoint('stop:signalled');
    const gone = await pollUntil(async () => ((await processGroupAlive(record.pid)) ? undefined : true), {
      timeoutMs: app.stop_timeout_s * 1000,
      // Most apps exit within tens of ms of SIGTERM, and a deploy waits on this: look often.
      initialIntervalMs: 2,
      maxIntervalMs: 20,
    });
    if (!gone) {
      outcome = 'killed';
      killGroup(record.pid, 'SIGKILL');
      await pollUntil(async () => ((await processGroupAlive(record.pid)) ? undefined : true), { timeoutMs: 5000, initialIntervalMs: 5 });
    }
  }
  await removePidfile(app.paths.pidfile[color]);
  return outcome;
}

/** How a process ended: its exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The exits of the instances this process started, by pid. Only a parent learns a child's exit
 * status; a color started by an earlier duet process is only seen to be gone.
 */
const exits = new Map<number, Promise<ExitStatus>>();

function recordExit(pid: number, child: ChildProcess): void {
  const exited = new Promise<ExitStatus>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      // Kept a while for whoever asks after the fact, then forgotten: duet serve runs for months.
      setTimeout(() => exits.delete(pid), 60_000).unref();
    }),
  );
  exits.set(pid, exited);
}

/** What the instance printed since duet last started it: the reason it died is usually there. */
async function processLogTail(app: AppConfig, color: Color): Promise<string> {
  const text = (await readFileIfExists(app.paths.instanceLog[color])) ?? '';
  const start = text.lastIndexOf(START_MARKER);
  const sinceStart = start < 0 ? text : text.slice(text.indexOf('\n', start) + 1);
  return lastLines(sinceStart, 20).trim();
}
