import { readdir, readFile } from 'node:fs/promises';

/**
 * A pid alone is not an identity: after a reboot or a long uptime the kernel hands the same
 * number to an unrelated process. The start time in /proc/<pid>/stat (clock ticks since boot)
 * is fixed for a process's life, so pid + start time names exactly one process.
 */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

export async function processStartTime(pid: number): Promise<string | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // a zombie is already dead
  return fields[19];
}

export async function identify(pid: number): Promise<ProcessIdentity | undefined> {
  const startTime = await processStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/** True only when `identity.pid` is alive and is still the very process that was recorded. */
export async function isSameProcessAlive(identity: ProcessIdentity): Promise<boolean> {
  return (await processStartTime(identity.pid)) === identity.startTime;
}

/**
 * Whether any process of the group still runs. `kill(-pgid, 0)` is not enough: it counts
 * zombies, and an exited instance stays a zombie until its parent (init, or a slow reaper in a
 * container) collects it. So the group's members are looked up in /proc and zombies ignored.
 */
export async function processGroupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // The leader alive is the usual answer, and one read instead of a scan of every process (a
  // stop polls this every few ms, and the scan took 10-30 ms on a loaded machine).
  if (await isLiveMember(String(pgid), pgid)) return true;
  for (const entry of await readdir('/proc')) {
    if (/^\d+$/.test(entry) && (await isLiveMember(entry, pgid))) return true;
  }
  return false;
}

async function isLiveMember(pid: string, pgid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return false;
  // After the command name: state (field 3), ppid (4), pgrp (5).
  const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(pgrp) === pgid && state !== 'Z' && state !== 'X';
}
