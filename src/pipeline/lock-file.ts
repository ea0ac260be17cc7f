import { randomUUID } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { identify, type ProcessIdentity } from '../instance/process-identity.js';

/**
 * A lock file created with O_EXCL and naming its holder by pid + start time: the primitive under
 * the per-app deploy lock and the one-`duet serve`-per-state-dir lock. Node has no flock(), and a
 * file that names its holder also lets a refused operator see who holds it.
 */
export interface LockOwner extends ProcessIdentity {
  command: string;
  since: string;
  /**
   * Unique per acquisition. The pid alone cannot tell a lock this process holds right now from one
   * it failed to remove earlier (a read-only moment of the state dir): only the token can.
   */
  token?: string;
}

type Holder = LockOwner | 'gone' | 'being-written';

/** A lock file being written right now is empty for a moment; older than this, it is debris. */
const EMPTY_LOCK_GRACE_MS = 5000;

export async function tryCreate(path: string, owner: LockOwner): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(owner));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

export async function readHolder(path: string): Promise<Holder> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as LockOwner;
    if (Number.isInteger(parsed.pid) && typeof parsed.startTime === 'string') return parsed;
  } catch {
    // fall through: empty or torn
  }
  const age = await stat(path).then(
    (s) => Date.now() - s.mtimeMs,
    () => Infinity,
  );
  return age < EMPTY_LOCK_GRACE_MS ? 'being-written' : { pid: 0, startTime: 'unreadable', command: 'unknown', since: 'unknown' };
}

export function sameHolder(a: Holder, b: LockOwner): boolean {
  return a !== 'gone' && a !== 'being-written' && a.pid === b.pid && a.startTime === b.startTime && a.token === b.token;
}

/**
 * Remove the lock only if it is still `expected`'s: between reading and unlinking, another waiter
 * may already have taken over and written its own. A failed unlink is thrown, not swallowed: a
 * caller that loops on "remove, then create" would otherwise spin on a read-only state dir.
 */
export async function removeIfUnchanged(path: string, expected: LockOwner): Promise<void> {
  if (!sameHolder(await readHolder(path), expected)) return;
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** This process as the holder of a lock it is about to take for `command`, with a new token. */
export async function lockOwnerNow(command: string): Promise<LockOwner> {
  const me = await identify(process.pid);
  if (!me) throw new Error('cannot read this process in /proc');
  return { ...me, command, since: new Date().toISOString(), token: randomUUID() };
}
