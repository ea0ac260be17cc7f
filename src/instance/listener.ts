import { readdirSync, readlinkSync } from 'node:fs';
import { readFileOrUndefinedSync } from '../util/atomic-file.js';
import type { Endpoint } from './endpoint.js';
import { groupMembers } from './process-identity.js';

/**
 * Which process of a group listens on the color's port or socket: the app's own process. What
 * duet starts is `sh -c <start>`; with `exec node ...` the shell becomes the app, but `npm start`
 * or `node a && node b` keep parents, and a pid that the operator kills or profiles must be the
 * app's. Found from /proc: the listening socket's inode, then the member holding it.
 */
export function listenerInGroup(pgid: number, endpoint: Endpoint): number | undefined {
  const inodes = listeningInodes(endpoint);
  if (inodes.size === 0) return undefined;
  // Oldest first: in a cluster (master and workers sharing the socket) the master is the app.
  return groupMembers(pgid).find((pid) => holdsAny(pid, inodes));
}

function listeningInodes(endpoint: Endpoint): Set<string> {
  const inodes = new Set<string>();
  if (endpoint.kind === 'port') {
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      // "sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode": port in hex, 0A is LISTEN.
      for (const line of tableLines(table)) {
        const fields = line.trim().split(/\s+/);
        const port = Number.parseInt(fields[1]?.split(':').at(-1) ?? '', 16);
        if (port === endpoint.port && fields[3] === '0A' && fields[9]) inodes.add(fields[9]);
      }
    }
  } else {
    // "Num RefCount Protocol Flags Type St Inode Path"
    for (const line of tableLines('/proc/net/unix')) {
      const fields = line.trim().split(/\s+/);
      if (fields[7] === endpoint.path && fields[6]) inodes.add(fields[6]);
    }
  }
  return inodes;
}

function tableLines(path: string): string[] {
  return (readFileOrUndefinedSync(path) ?? '').split('\n').slice(1).filter(Boolean);
}

function holdsAny(pid: number, inodes: Set<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // gone meanwhile, or another user's
  }
  return fds.some((fd) => {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      return target.startsWith('socket:[') && inodes.has(target.slice(8, -1));
    } catch {
      return false;
    }
  });
}
