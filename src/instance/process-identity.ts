import { allPids, groupMembers, hasExited, procStat } from '../util/proc.js';

export { groupMembers };

/**
 * A pid alone is not an identity: after a reboot or a long uptime the kernel hands the same
 * number to an unrelated process. The start time in /proc/<pid>/stat (clock ticks since boot)
 * is fixed for a process's life, so pid + start time names exactly one process.
 */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = procStat(pid);
  return stat === undefined || hasExited(stat) ? undefined : stat.startTime;
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
  // stop polls this every few ms, and a scan is slow on a loaded machine).
  if (isLiveMember(pgid, pgid)) return true;
  return allPids().some((pid) => isLiveMember(pid, pgid));
}

/**
 * Whether the process group a recorded leader started still has a live member, even when the
 * leader itself is gone: a `kill -9` of the `sh -c` (or of npm) leaves the app it started running
 * in the group, holding the port. A leader's pid that now names another process means the group
 * is empty: the kernel hands out no pid that is still some group's id.
 */
export function recordedGroupAlive(leader: ProcessIdentity): boolean {
  const stat = procStat(leader.pid);
  if (stat && stat.startTime !== leader.startTime) return false;
  if (stat && !hasExited(stat)) return true;
  return groupMembers(leader.pid).length > 0;
}

function isLiveMember(pid: number, pgid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.pgrp === pgid && !hasExited(stat);
}
