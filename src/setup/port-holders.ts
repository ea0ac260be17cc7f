import { readdir, readFile, readlink } from 'node:fs/promises';
import { procStat } from '../util/proc.js';

/**
 * Who listens on a TCP port, from /proc: the listening sockets' inodes from /proc/net/tcp{,6},
 * then the processes holding those inodes among their fds. Seeing other users' fds needs root;
 * without it `visible` is false and the caller must fall back to weaker evidence.
 */
interface PortHolder {
  pid: number;
  comm: string;
  /** Process group: a duet instance is the leader of its own group (detached start). */
  pgid: number;
}

interface PortHolders {
  listening: boolean;
  holders: PortHolder[];
  /** Whether every listening socket could be traced to a process. */
  visible: boolean;
}

const LISTEN = '0A';

async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const local = fields[1];
      if (!local || fields[3] !== LISTEN) continue;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(fields[9]!);
    }
  }
  return inodes;
}

export async function portHolders(port: number): Promise<PortHolders> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return { listening: false, holders: [], visible: true };
  const wanted = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  const found = new Set<string>();
  const holders: PortHolder[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const fds = await readdir(`/proc/${entry}/fd`).catch(() => [] as string[]);
    let holds = false;
    for (const fd of fds) {
      const link = await readlink(`/proc/${entry}/fd/${fd}`).catch(() => '');
      if (wanted.has(link)) {
        found.add(link);
        holds = true;
      }
    }
    if (holds) holders.push(await describe(Number(entry)));
  }
  return { listening: true, holders, visible: found.size === wanted.size };
}

async function describe(pid: number): Promise<PortHolder> {
  const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
  return { pid, comm, pgid: procStat(pid)?.pgrp ?? 0 };
}

export function describeHolders(holders: PortHolder[]): string {
  return holders.map((h) => `pid ${h.pid} (${h.comm})`).join(', ');
}
