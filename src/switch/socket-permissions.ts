import { chmodSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { DuetError } from '../errors.js';

/**
 * Let nginx's workers connect to an instance's unix socket. They do not run as duet's user:
 * started as root, nginx drops its workers to nobody (managed) or www-data (packaged). Connecting
 * needs write permission on the socket and search (x) permission on every directory above it.
 *
 * So the socket becomes 0666 and the directories from the app's root down to the socket's
 * directory get o+x. That grants nothing a port would not: any local user can connect to a
 * loopback TCP port just as well, and in port mode that is exactly what the instances expose.
 * o+x without o+r lets nobody list the directories, only pass through them.
 *
 * `root` defaults to the app root of the standard layout `<root>/sockets/<color>.sock`. The
 * directories above it belong to the operator and are only checked: when duet runs as root the
 * workers certainly run as someone else, and a closed directory there would make every request a
 * 502 with "Permission denied" buried in nginx's error log -- better said here, up front.
 *
 * Synchronous: it runs between "healthy" and the switch, and these are a few metadata calls on a
 * local file system, each a microsecond done directly and a thread-pool round trip done async.
 */
export function makeSocketReachable(path: string, root: string = dirname(dirname(path))): void {
  const socketPath = resolve(path);
  const top = resolve(root);
  const below = relative(top, dirname(socketPath));
  if (below.startsWith('..') || isAbsolute(below)) {
    throw new Error(`makeSocketReachable: ${socketPath} is not under ${top}`);
  }
  chmodSync(socketPath, 0o666);
  let dir = top;
  for (const part of ['', ...(below ? below.split(sep) : [])]) {
    dir = part ? `${dir}${sep}${part}` : dir;
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
  }
  if (process.getuid?.() === 0) checkAncestors(top, socketPath);
}

function checkAncestors(top: string, socketPath: string): void {
  for (let dir = dirname(top); ; dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      throw new DuetError(`nginx's workers cannot reach ${socketPath}: ${dir} is not searchable by other users`, {
        step: 'socket permissions',
        hint: `chmod o+x ${dir} (this lets others pass through it, not list it), or move state_dir`,
      });
    }
    if (dirname(dir) === dir) return;
  }
}
