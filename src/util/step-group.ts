import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readFileIfExists, writeFileAtomic } from './atomic-file.js';
import { pollUntil } from './poll.js';
import { groupMembers, procStat } from './proc.js';

/**
 * An install or build runs in a process group of its own, recorded on disk while it runs: when
 * duet is killed -9 mid-install, `npm ci` and its children go on writing the checkout, and the
 * resumed deploy must stop them before it starts a second install in the same directory.
 */
interface StepGroupRecord {
  pgid: number;
  startTime: string;
  command: string;
  since: string;
}

export async function recordStepGroup(path: string, pgid: number, command: string): Promise<void> {
  const startTime = procStat(pgid)?.startTime;
  if (startTime === undefined) return; // exited already: nothing can be left of it
  const record: StepGroupRecord = { pgid, startTime, command, since: new Date().toISOString() };
  await mkdir(dirname(path), { recursive: true });
  // No fsync: after a power cut nothing of the group runs.
  await writeFileAtomic(path, `${JSON.stringify(record)}\n`, 0o644, { fsync: false });
}

/** Signal a process group; one already gone is no error. SIGKILL: what still runs once its command returned (a stray background job). */
export function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * Stop what a recorded group left running (SIGTERM, then SIGKILL after `graceMs`) and forget the
 * record. A leader pid that now names another process means the group is empty (no pid is handed
 * out while a group still uses it as its id), so a stranger is never signalled. Returns the
 * record when something was stopped.
 */
export async function stopRecordedGroup(path: string, graceMs = 5000): Promise<StepGroupRecord | undefined> {
  const record = await readRecord(path);
  let stopped: StepGroupRecord | undefined;
  if (record && isOurs(record) && groupMembers(record.pgid).length > 0) {
    stopped = record;
    await stopGroup(record.pgid, graceMs);
  }
  await rm(path, { force: true });
  return stopped;
}

/** SIGTERM the whole group, SIGKILL what of it still runs after `graceMs`; resolves once it is gone (or 5 s after the SIGKILL). */
export async function stopGroup(pgid: number, graceMs: number): Promise<void> {
  killGroup(pgid, 'SIGTERM');
  const gone = async (): Promise<true | undefined> => (groupMembers(pgid).length === 0 ? true : undefined);
  if (await pollUntil(gone, { timeoutMs: graceMs, initialIntervalMs: 5, maxIntervalMs: 100 })) return;
  killGroup(pgid, 'SIGKILL');
  await pollUntil(gone, { timeoutMs: 5000, initialIntervalMs: 5, maxIntervalMs: 100 });
}

function isOurs(record: StepGroupRecord): boolean {
  const leader = procStat(record.pgid);
  return leader === undefined || leader.startTime === record.startTime;
}

async function readRecord(path: string): Promise<StepGroupRecord | undefined> {
  const text = await readFileIfExists(path);
  if (text === undefined) return undefined;
  try {
    const record = JSON.parse(text) as StepGroupRecord;
    return Number.isInteger(record.pgid) && record.pgid > 1 && typeof record.startTime === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}
