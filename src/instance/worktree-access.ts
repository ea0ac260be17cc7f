import { constants, existsSync } from 'node:fs';
import { lstat, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { runArgv, type OutputSink } from '../util/run.js';

/**
 * app_user: the install and build run as the app user, in duet's checkout. They write
 * node_modules and build output anywhere in the tree, so the tree is opened to the group they
 * share with duet. Not `.git`: that stays duet's alone (0755, files 0644), and git itself refuses
 * a repository another user owns ("dubious ownership"), so a `.git` the app user swapped in is
 * never run by duet, whatever config or hooks it holds.
 */

/**
 * Give the group write on duet's entries in the worktree, except .git. Returns how many it
 * changed. node_modules is the install's own and is walked only when it is duet's and closed to
 * the group: a tree installed or copied before app_user was set, which the app user's next
 * install must be able to replace (once; a tree the app user made, or duet copied from one,
 * is group-writable at the top and skipped). Every entry is opened without following a symlink
 * and changed through that descriptor, and each directory is read through its own
 * (/proc/self/fd/N): an entry another user swaps for a symlink meanwhile is skipped, never
 * followed to one of duet's files elsewhere.
 */
export async function openWorktreeToGroup(dir: string): Promise<number> {
  const uid = process.getuid?.();
  let opened = 0;
  const visit = async (path: string, top: boolean, onlyIfClosed = false): Promise<void> => {
    const handle = await openNoFollow(path);
    if (handle === undefined) return;
    try {
      const entry = await handle.stat();
      const closed = entry.uid === uid && (entry.mode & 0o020) === 0;
      if (onlyIfClosed && !closed) return;
      if (closed) {
        await handle.chmod((entry.mode & 0o7777) | 0o020);
        opened += 1;
      }
      if (!entry.isDirectory()) return;
      const here = `/proc/self/fd/${handle.fd}`;
      for (const name of await readdir(here)) {
        if (top && name === '.git') continue;
        await visit(`${here}/${name}`, false, top && name === 'node_modules');
      }
    } finally {
      await handle.close();
    }
  };
  await visit(dir, true);
  return opened;
}

/** A symlink (ELOOP), a socket (ENXIO), or gone: nothing to open up. O_NONBLOCK: a FIFO must not block. */
async function openNoFollow(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if (['ELOOP', 'ENXIO', 'ENOENT', 'EACCES'].includes((error as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw error;
  }
}

/**
 * What `dir/.git` is when it is not duet's own repository (another user's, a file, a symlink),
 * or undefined: it is duet's, or there is none. git would refuse such a one.
 */
export async function foreignRepository(dir: string): Promise<string | undefined> {
  const git = await lstat(join(dir, '.git')).catch(() => undefined);
  if (git === undefined || (git.isDirectory() && git.uid === process.getuid?.())) return undefined;
  return git.isDirectory() ? `a directory of uid ${git.uid}` : git.isSymbolicLink() ? 'a symlink' : 'not a directory';
}

/** A checkout with a foreign repository is removed, to be made anew. Nothing in it is run or read. */
export async function removeForeignCheckout(app: AppConfig, dir: string, what: string, output?: OutputSink): Promise<void> {
  output?.write(`duet: ${join(dir, '.git')} is ${what}, not duet's repository: the checkout is made anew\n`);
  await giveBackToGroup(app, dir);
  await rm(dir, { recursive: true, force: true });
}

/**
 * What the app user made in `dir` without group write (a directory of mode 0755) duet could not
 * remove. The step runner gives the group write on everything of its user after each command
 * (step-runner.ts); an empty command, `true`, does only that. Run before duet cleans a checkout.
 */
export async function giveBackToGroup(app: AppConfig, dir: string): Promise<void> {
  if (app.stepSocket === undefined || !existsSync(dir)) return;
  await runArgv(['true'], { step: 'update', cwd: dir, forApp: true, stepSocket: app.stepSocket });
}
