import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Resident set size of one process in MB (VmRSS of /proc/<pid>/status), or null when it is gone. */
export function rssMb(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Samples RSS every `everyMs` until stopped; returns the samples. */
export function sampleRss(pid: number, everyMs = 50): { stop(): Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const value = rssMb(pid);
      if (value !== null) samples.push(value);
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(10);
  }
  return !isAlive(pid);
}

/**
 * What one durable append costs on this disk right now: open, append a line, fsync, close (what
 * duet does per journal event and per accepted webhook delivery), `count` times in a row.
 */
export async function fsyncProbe(dir: string, count = 30): Promise<{ p50Ms: number | null; p99Ms: number | null }> {
  const { open, rm } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { percentile } = await import('./stats.js');
  const path = join(dir, `.fsync-probe-${process.pid}`);
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i += 1) {
      const started = performance.now();
      const handle = await open(path, 'a');
      try {
        await handle.appendFile(`${'x'.repeat(200)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      times.push(performance.now() - started);
    }
  } finally {
    await rm(path, { force: true });
  }
  return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

/** Processes whose parent is `pid` (from /proc/<n>/stat). */
export function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

/** Until `pid` has no child processes left (a server's commands all ran), or the time is up. */
export async function waitForNoChildren(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (childPids(pid).length === 0) return true;
    await sleep(50);
  }
  return childPids(pid).length === 0;
}

/** CPU time (user + system) of `pid` and of its reaped children, in ms. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after the state field).
    const ticks = [11, 12, 13, 14].reduce((s, i) => s + Number(fields[i]), 0);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * Established TCP connections `pid` holds (its socket fds matched with /proc/net/tcp and tcp6 by
 * inode): what a kill -9 of it cuts. Null when the process cannot be read.
 */
export function tcpConnections(pid: number): number | null {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match) inodes.add(match[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return null;
  }
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // st (field 3) 01 is ESTABLISHED; field 9 is the inode.
      if (fields[3] === '01' && inodes.has(fields[9]!)) count += 1;
    }
  }
  return count;
}
