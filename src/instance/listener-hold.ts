import net from 'node:net';
import { renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * `socket_activation`: duet owns a color's listening socket and hands it to each process it
 * starts as fd 3 (systemd's convention: LISTEN_FDS=1). The socket outlives the app: while the
 * app restarts, nginx's connections wait in its queue instead of being refused, so a request that
 * kills the live color costs the requests that process held, not every request of its restart,
 * and none of them is handed to the standby (where a request of death kills that color too).
 *
 * duet only binds the socket; the app's listen() makes it listening, and it stays listening once
 * the app is gone, for as long as this process holds it. Nothing here ever accepts a connection.
 */

/** The piece of node's pipe handle this module uses (net's own handle, as node's cluster makes it). */
interface PipeHandle {
  fd: number;
  close(callback?: () => void): void;
}

interface Hold {
  handle: PipeHandle;
  /** The socket file's inode when it was bound: another one at the path means the hold is stale. */
  ino: number;
}

const holds = new Map<string, Hold>();

/** The fd of the socket this process holds at `path`, bound anew when it holds none (or a stale one). */
export function holdListener(path: string): number {
  const held = heldListener(path);
  if (held !== undefined) return held;
  // Bound under a temporary name, then renamed over the path: node unlinks a pipe's bound name
  // when the handle closes, and that must never be the path, which another process may have
  // bound anew by then. The rename also replaces a socket file left by a crash in one step.
  // Short (a socket path has at most 107 bytes) and this process's own: its binds never overlap;
  // one a dead process of the same pid left behind is removed first.
  const temporary = join(dirname(path), `.${process.pid}.bind`);
  rmSync(temporary, { force: true });
  // node's own way to a bound, not yet listening pipe (its cluster module's); -1, -1: a path, no port.
  const internals = net as unknown as { _createServerHandle: (address: string, port: number, addressType: number) => PipeHandle | number };
  const handle = internals._createServerHandle(temporary, -1, -1);
  if (typeof handle === 'number') throw Object.assign(new Error(`cannot bind ${path} (errno ${handle})`), { code: 'EBIND' });
  try {
    renameSync(temporary, path);
  } catch (error) {
    handle.close();
    throw error;
  }
  holds.set(path, { handle, ino: statSync(path).ino });
  return handle.fd;
}

/** The fd this process holds at `path`, if the path still names that socket. */
export function heldListener(path: string): number | undefined {
  const hold = holds.get(path);
  if (!hold) return undefined;
  if (inodeAt(path) === hold.ino) return hold.handle.fd;
  // Unlinked or bound anew by another duet process (a CLI deploy): what this one holds is
  // reachable by nobody now.
  release(path, hold);
  return undefined;
}

/**
 * Let the socket go: connections still queued in it are reset (nginx answers them 502), new
 * ones are refused, which nginx's fallback hands to the standby. The path is removed while it
 * is still this socket's.
 */
export function releaseListener(path: string): void {
  const hold = holds.get(path);
  if (!hold) return;
  if (inodeAt(path) === hold.ino) {
    try {
      unlinkSync(path);
    } catch {
      // gone meanwhile
    }
  }
  release(path, hold);
}

function release(path: string, hold: Hold): void {
  holds.delete(path);
  hold.handle.close();
}

function inodeAt(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
