import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../config/load.js';
import { DuetError } from '../errors.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { lockOwnerNow, readHolder, removeIfUnchanged, tryCreate, type LockOwner } from './lock-file.js';

export type { LockOwner };

interface DeployLock {
  owner: LockOwner;
  /** Set when the lock was taken over from a process that died holding it. */
  takenOverFrom: LockOwner | undefined;
  /** Never throws: a lock that cannot be removed now is removed in the background (see below). */
  release(): Promise<void>;
}

interface AcquireOptions {
  command: string;
  /** false: fail at once when another live process holds the lock (`--no-wait`). */
  wait: boolean;
  onWait?: (holder: LockOwner) => void;
  /** Told when the lock could not be removed; duet goes on retrying it in the background. */
  onReleaseFailed?: (error: Error) => void;
  /** Stops waiting (duet serve shutting down): acquireLock rejects with LockWaitAborted. */
  signal?: AbortSignal;
  pollMs?: number;
}

/**
 * The wait for a lock was given up because duet is stopping; nothing was started. Control flow
 * for the queue (the deploy runs again when duet serve starts), not an error anyone is told of:
 * not a DuetError (like execa's DiscardedError).
 */
export class LockWaitAborted extends Error {
  constructor(app: string) {
    super(`stopped waiting for the lock of ${app}: duet is shutting down`);
    this.name = 'LockWaitAborted';
  }
}

/** The tokens of the locks this process holds right now, by lock path. */
const heldHere = new Map<string, Set<string>>();

/**
 * One deploy or switch per app at a time, across processes: the CLI in a shell and `duet serve`
 * take the same lock file, created with O_EXCL. A holder that died (kill -9, reboot) is detected
 * by pid + start time and its lock taken over, so a crash never needs manual cleanup. A lock
 * naming this very process but none of the acquisitions it holds now is one it failed to remove
 * (the state dir was read-only for a moment): taken over too, or duet serve would wait on itself.
 */
export async function acquireLock(app: AppConfig, options: AcquireOptions): Promise<DeployLock> {
  const path = app.paths.lock;
  await mkdir(dirname(path), { recursive: true });
  const owner = await lockOwnerNow(options.command);
  let takenOverFrom: LockOwner | undefined;
  let announced = false;

  for (;;) {
    if (options.signal?.aborted) throw new LockWaitAborted(app.name);
    if (await create(app, path, owner)) {
      hold(path, owner.token!);
      return { owner, takenOverFrom, release: () => release(path, owner, options) };
    }
    const current = await readHolder(path);
    if (current === 'gone') continue;
    if (current === 'being-written' || (await isHeld(path, current, owner.pid))) {
      if (current !== 'being-written') {
        if (!options.wait) {
          const who = current.pid === owner.pid ? 'this duet process' : `pid ${current.pid}`;
          throw new DuetError(`${app.name} is locked by ${who} (${current.command}, since ${current.since})`, {
            step: 'lock',
            hint: 'wait for it to finish, or run again without --no-wait to queue behind it',
          });
        }
        if (!announced) options.onWait?.(current);
        announced = true;
      }
      await sleep(options.pollMs ?? 100, undefined, { signal: options.signal }).catch(() => {});
      continue;
    }
    takenOverFrom = current;
    await removeIfUnchanged(path, current).catch((error: unknown) => {
      throw unwritable(app, path, error);
    });
  }
}

/** The live holder of an app's lock, if any. */
export async function lockHolder(app: AppConfig): Promise<LockOwner | undefined> {
  const current = await readHolder(app.paths.lock);
  if (current === 'gone' || current === 'being-written') return undefined;
  return (await isHeld(app.paths.lock, current, process.pid)) ? current : undefined;
}

async function isHeld(path: string, holder: LockOwner, myPid: number): Promise<boolean> {
  if (!(await isSameProcessAlive(holder))) return false;
  if (holder.pid !== myPid) return true;
  return holder.token !== undefined && (heldHere.get(path)?.has(holder.token) ?? false);
}

async function create(app: AppConfig, path: string, owner: LockOwner): Promise<boolean> {
  try {
    return await tryCreate(path, owner);
  } catch (error) {
    throw unwritable(app, path, error);
  }
}

function unwritable(app: AppConfig, path: string, error: unknown): DuetError {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  return new DuetError(`cannot write the lock of ${app.name} (${path}): ${code}`, {
    step: 'lock',
    cause: error,
    hint: 'the state dir must be writable (a full or read-only file system?); check `df` and `mount`, then run again',
  });
}

function hold(path: string, token: string): void {
  const tokens = heldHere.get(path) ?? new Set<string>();
  tokens.add(token);
  heldHere.set(path, tokens);
}

/**
 * Once release is called the lock counts as free for this process at once, whether or not its
 * file could be removed. When the removal fails, it is retried in the background until it
 * succeeds: other processes (a CLI deploy, the next duet serve) see a live holder meanwhile, and
 * must not wait for longer than the state dir stays read-only.
 */
async function release(path: string, owner: LockOwner, options: AcquireOptions): Promise<void> {
  heldHere.get(path)?.delete(owner.token!);
  try {
    await removeIfUnchanged(path, owner);
  } catch (error) {
    options.onReleaseFailed?.(error as Error);
    retryRemoval(path, owner);
  }
}

const RETRY_MAX_MS = 1000;

function retryRemoval(path: string, owner: LockOwner, delayMs = 50): void {
  // unref'd: a CLI that exits leaves a dead holder's lock, which the next taker removes anyway.
  setTimeout(() => {
    removeIfUnchanged(path, owner).catch(() => retryRemoval(path, owner, Math.min(delayMs * 2, RETRY_MAX_MS)));
  }, delayMs).unref();
}
