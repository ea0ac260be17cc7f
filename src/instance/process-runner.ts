import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import { pollUntil } from '../util/poll.js';
import { inheritedEnv } from '../util/child-env.js';
import { lastLines } from '../util/run.js';
import { instanceEnv } from './app-env.js';
import { identify, processGroupAlive, recordedGroupAlive } from './process-identity.js';
import { readLivePidfile, readPidfile, removePidfile, writePidfile, type InstanceRecord, type Revision, type StopOutcome } from './pidfile.js';
import { crashPoint } from '../util/crash-point.js';

/**
 * `runner: process`, the default: each color is a detached process group that duet starts and
 * signals itself, with a pidfile that records pid + start time and the revision it runs.
 */

/** The running instance of a color, or undefined: the pidfile checked against /proc. */
export function runningProcess(app: AppConfig, color: Color): Promise<InstanceRecord | undefined> {
  return readLivePidfile(app.paths.pidfile[color]);
}

/** Written to the instance log before each start, so a failure can show only this start's output. */
const START_MARKER = '--- duet: starting ';

/**
 * Start a color detached, in its own session and process group, so it outlives duet (a CLI
 * that exits, a `duet serve` that restarts) and can be stopped as a whole group later.
 */
export async function startProcess(app: AppConfig, color: Color, revision: Revision): Promise<InstanceRecord> {
  const logPath = app.paths.instanceLog[color];
  await mkdir(dirname(logPath), { recursive: true });
  const log = await open(logPath, 'a');
  // Never duet's own environment: it holds duet's secrets (see inheritedEnv).
  const env: NodeJS.ProcessEnv = { ...inheritedEnv(), ...instanceEnv(app, color, revision) };
  try {
    await log.write(`${START_MARKER}${color} at ${revision.sha} (${revision.ref}) on ${new Date().toISOString()} ---\n`);
    const child = spawn('sh', ['-c', app.start], {
      cwd: app.paths.checkout[color],
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
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
    const record: InstanceRecord = { ...identity, color, sha: revision.sha, ref: revision.ref, startedAt: new Date().toISOString() };
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
export async function stopProcess(app: AppConfig, color: Color): Promise<StopOutcome> {
  const record = await readPidfile(app.paths.pidfile[color]);
  let outcome: StopOutcome = 'not-running';
  if (record && recordedGroupAlive(record)) {
    outcome = 'stopped';
    signalGroup(record.pid, 'SIGTERM');
    crashPoint('stop:signalled');
    const gone = await pollUntil(async () => ((await processGroupAlive(record.pid)) ? undefined : true), {
      timeoutMs: app.stop_timeout_s * 1000,
      // Most apps exit within tens of ms of SIGTERM, and a deploy waits on this: look often.
      initialIntervalMs: 2,
      maxIntervalMs: 20,
    });
    if (!gone) {
      outcome = 'killed';
      signalGroup(record.pid, 'SIGKILL');
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

/** Resolves when the instance with this pid, started by this process, exits; undefined for any other. */
export function exitOf(pid: number): Promise<ExitStatus> | undefined {
  return exits.get(pid);
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** What the instance printed since duet last started it: the reason it died is usually there. */
export async function processLogTail(app: AppConfig, color: Color, lines = 20): Promise<string> {
  const text = (await readFileIfExists(app.paths.instanceLog[color])) ?? '';
  const start = text.lastIndexOf(START_MARKER);
  const sinceStart = start < 0 ? text : text.slice(text.indexOf('\n', start) + 1);
  return lastLines(sinceStart, lines).trim();
}
