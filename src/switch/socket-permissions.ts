import { chmodSync, existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { DuetError } from '../errors.js';

/**
 * Let nginx's workers connect to an instance's unix socket. They do not run as duet's user:
 * started as root, nginx drops its workers to nobody (managed) or www-data (packaged). Connecting
 * needs write permission on the socket and search (x) permission on every directory above it.
 *
 * So the socket becomes 0666 and the directories from the app's root down to the socket's
 * directory get o+x, and everything else in the app's root loses what others could do with it. That grants nothing a port would not: any local user can connect to a
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
  openSocket(socketPath);
  let dir = top;
  const parts = below ? below.split(sep) : [];
  for (const part of ['', ...parts]) {
    dir = part ? `${dir}${sep}${part}` : dir;
    // Pass through only: others may not list or write these directories.
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o007) !== 0o001) chmodSync(dir, (mode & ~0o007) | 0o001);
  }
  if (parts[0]) closeSiblings(top, parts[0]);
  if (process.getuid?.() === 0) checkAncestors(top, socketPath);
}

/**
 * The socket itself: 0666 when it is duet's. With app_user it is the app user's, which duet may
 * not chmod; the app unit's UMask=0011 creates it connectable for others already, and a socket
 * that is not is refused here rather than found by nginx's first request.
 */
function openSocket(socketPath: string): void {
  const socket = lstatSync(socketPath);
  if (!socket.isSocket()) throw new Error(`makeSocketReachable: ${socketPath} is not a socket`);
  if (socket.uid === process.getuid?.()) {
    chmodSync(socketPath, 0o666);
  } else if ((socket.mode & 0o002) === 0) {
    throw new DuetError(
      `nginx's workers cannot connect to ${socketPath}: it is uid ${socket.uid}'s (app_user), mode 0${(socket.mode & 0o777).toString(8)}, not writable by others`,
      {
        step: 'socket permissions',
        hint: 'duet-app@.service sets UMask=0011 for this (duet install writes it); an app that sets its own umask or chmods its socket must leave it writable by others',
      },
    );
  }
}

/** Port mode: the app root and everything in it closed to other local users. */
export function keepAppRootPrivate(root: string): void {
  if (!existsSync(root)) return; // nothing of the app's kept by duet (an instance started by hand)
  const mode = statSync(root).mode & 0o7777;
  if ((mode & 0o007) !== 0) chmodSync(root, mode & ~0o007);
  closeSiblings(root, undefined);
}

/**
 * The app root is passable for nginx's workers now, so whatever in it others may read could be
 * read by path: the checkouts (the app's code and its .env files), the journal, the logs. Only
 * the way to the sockets stays open. Done on every switch: git, npm and the app create what they
 * create with their own umask (a shell's usual 022 makes it readable by all), and the top-level
 * entries closed here keep everything below them out of reach whatever its own mode.
 */
function closeSiblings(root: string, open: string | undefined): void {
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (entry.name === open || entry.isSymbolicLink()) continue;
    const path = join(root, entry.name);
    const mode = lstatSync(path).mode & 0o7777;
    if ((mode & 0o007) !== 0) chmodSync(path, mode & ~0o007);
  }
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
