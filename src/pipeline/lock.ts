import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../config/load.js';
import { DuetError } from '../errors.js';
import { identify, isSameProcessAlive, type ProcessIdentity } from '../instance/process-identity.js';

/** Who holds an app's deploy lock: enough to tell the waiting operator and to detect death. */
export interface LockOwner extends ProcessIdentity {
  command: string;
  since: string;
}

export interface DeployLock {
  owner: LockOwner;
  /** Set when the lock was taken over from a process that died holding it. */
  takenOverFrom: LockOwner | undefined;
  release(): Promise<void>;
}

export interface AcquireOptions {
  command: string;
  /** false: fail at once when another live process holds the lock (`--no-wait`). */
  wait: boolean;
  onWait?: (holder: LockOwner) => void;
  pollMs?: number;
}

/** A lock file being written right now is empty for a moment; older than this, it is debris. */
const EMPTY_LOCK_GRACE_MS = 5000;

/**
 * One deploy or switch per app at a time, across processes: the CLI in a shell and `duet serve`
 * take the same lock file, created with O_EXCL. A holder that died (kill -9, reboot) is detected
 * by pid + start time and its lock taken over, so a crash never needs manual cleanup.
 */
export async function acquireLock(app: AppConfig, options: AcquireOptions): Promise<DeployLock> {
  const path = app.paths.lock;
  await mkdir(dirname(path), { recursive: true });
  const me = await identify(process.pid);
  if (!me) throw new Error('cannot read this process in /proc');
  const owner: LockOwner = { ...me, command: options.command, since: new Date().toISOString() };
  let takenOverFrom: LockOwner | undefined;
  let announced = false;

  for (;;) {
    if (await tryCreate(path, owner)) {
      return { owner, takenOverFrom, release: () => releaseIfOurs(path, owner) };
    }
    const current = await readHolder(path);
    if (current === 'gone') continue;
    if (current === 'being-written' || (await isSameProcessAlive(current))) {
      if (current !== 'being-written') {
        if (!options.wait) {
          throw new DuetError(`${app.name} is locked by pid ${current.pid} (${current.command}, since ${current.since})`, {
            step: 'lock',
            hint: 'wait for it to finish, or run again without --no-wait to queue behind it',
          });
        }
        if (!announced) options.onWait?.(current);
        announced = true;
      }
      await sleep(options.pollMs ?? 100);
      continue;
    }
    takenOverFrom = current;
    await removeIfUnchanged(path, current);
  }
}

/** The live holder of an app's lock, if any. */
export async function lockHolder(app: AppConfig): Promise<LockOwner | undefined> {
  const current = await readHolder(app.paths.lock);
  if (current === 'gone' || current === 'being-written') return undefined;
  return (await isSameProcessAlive(current)) ? current : undefined;
}

async function tryCreate(path: string, owner: LockOwner): Promise<boolean> {
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

type Holder = LockOwner | 'gone' | 'being-written';

async function readHolder(path: string): Promise<Holder> {
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
  const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => Infinity);
  return age < EMPTY_LOCK_GRACE_MS ? 'being-written' : { pid: 0, startTime: 'unreadable', command: 'unknown', since: 'unknown' };
}

/**
 * Remove a dead holder's lock only if it is still that holder's: between reading and unlinking,
 * another waiter may already have taken over and written its own.
 */
async function removeIfUnchanged(path: string, dead: LockOwner): Promise<void> {
  const again = await readHolder(path);
  if (again !== 'gone' && again !== 'being-written' && again.pid === dead.pid && again.startTime === dead.startTime) {
    await unlink(path).catch(() => {});
  }
}

async function releaseIfOurs(path: string, owner: LockOwner): Promise<void> {
  const current = await readHolder(path);
  if (current !== 'gone' && current !== 'being-written' && current.pid === owner.pid && current.startTime === owner.startTime) {
    await unlink(path);
  }
}
