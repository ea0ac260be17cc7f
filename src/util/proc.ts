import { readdirSync } from 'node:fs';
import { readFileOrUndefinedSync } from './atomic-file.js';

/**
 * Processes as Linux's /proc shows them. Read synchronously: these files are made by the kernel
 * on read, never wait on a disk and take microseconds, while each async read is a round trip
 * through libuv's thread pool (bench/README.md, "Figures behind choices in the code").
 */

interface ProcStat {
  /** R, S, D, ... ; Z (zombie) and X (dead) have exited: see hasExited. */
  state: string;
  ppid: number;
  pgrp: number;
  /** Clock ticks since boot; fixed for a process's life, so pid + startTime names one process. */
  startTime: string;
}

/** /proc/<pid>/stat, or undefined when there is no such process (or no /proc). */
export function procStat(pid: number | string): ProcStat | undefined {
  const text = readFileOrUndefinedSync(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // "pid (comm) state ppid pgrp ... starttime(22) ...": comm may hold spaces and parentheses,
  // so the fields are counted after the last ')'. state is field 3, starttime field 22.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]), pgrp: Number(fields[2]), startTime: fields[19] ?? '' };
}

/** A zombie is already dead: it only waits for its parent to collect its exit status. */
export function hasExited(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X';
}

/** The command line with its NULs as spaces; a process may rewrite it (nginx's titles). */
export function procCmdline(pid: number): string | undefined {
  return readFileOrUndefinedSync(`/proc/${pid}/cmdline`)?.replaceAll('\0', ' ').trim();
}

/** Every pid there is now. */
export function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number);
  } catch {
    return [];
  }
}

/** Direct children of `pid`: its task's `children` file where the kernel has one, else a scan. */
export function childrenOf(pid: number): number[] {
  const listed = readFileOrUndefinedSync(`/proc/${pid}/task/${pid}/children`);
  const children = listed !== undefined ? listed.split(' ').filter(Boolean).map(Number) : allPids().filter((child) => procStat(child)?.ppid === pid);
  return children.sort((a, b) => a - b);
}

/** The live (not zombie) processes of a process group, oldest first. */
export function groupMembers(pgid: number): number[] {
  const starts = new Map<number, number>();
  for (const pid of allPids()) {
    const stat = procStat(pid);
    if (stat && stat.pgrp === pgid && !hasExited(stat)) starts.set(pid, Number(stat.startTime));
  }
  return [...starts.keys()].sort((a, b) => starts.get(a)! - starts.get(b)! || a - b);
}
