import { mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic, readFileIfExists } from '../util/atomic-file.js';
import { isSameProcessAlive, type ProcessIdentity } from './process-identity.js';

export interface Revision {
  sha: string;
  ref: string;
}

export type StopOutcome = 'not-running' | 'stopped' | 'killed';

/** What duet records when it starts a color: who runs, and which revision it runs. */
export interface InstanceRecord extends ProcessIdentity {
  color: string;
  sha: string;
  ref: string;
  startedAt: string;
  /** When this process started serving as the live color (the watch after a switch counts from it). */
  liveSince?: string;
  /** The run-time configuration it was started with (ConfigHashes.run), and of that its env files' hash. */
  config?: string;
  envFiles?: string;
}

export async function writePidfile(path: string, record: InstanceRecord): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // No fsync: after a power cut no process in it is alive anyway.
  await writeFileAtomic(path, `${JSON.stringify(record)}\n`, 0o644, { fsync: false });
}

/**
 * The record, but only if its process is alive and is the one duet started: a pidfile left by a
 * crash or a reboot, whose pid now belongs to a stranger, reads as "not running".
 */
export async function readLivePidfile(path: string): Promise<InstanceRecord | undefined> {
  const record = await readPidfile(path);
  return record && (await isSameProcessAlive(record)) ? record : undefined;
}

/** The record as written, alive or not; undefined when missing or not a record. */
export async function readPidfile(path: string): Promise<InstanceRecord | undefined> {
  const text = await readFileIfExists(path);
  if (text === undefined) return undefined;
  let record: InstanceRecord;
  try {
    record = JSON.parse(text) as InstanceRecord;
  } catch {
    return undefined; // torn writes cannot happen (atomic rename), but a hand-edited file can
  }
  return Number.isInteger(record.pid) && typeof record.startTime === 'string' ? record : undefined;
}

export async function removePidfile(path: string): Promise<void> {
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
