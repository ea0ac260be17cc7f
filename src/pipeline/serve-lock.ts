import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/load.js';
import { DuetError } from '../errors.js';
import { identify, isSameProcessAlive } from '../instance/process-identity.js';
import { pollUntil } from '../util/poll.js';
import { readHolder, removeIfUnchanged, tryCreate, type LockOwner } from './lock-file.js';

/** Another `duet serve` already runs on this state dir. */
export class ServeLockedError extends DuetError {
  constructor(
    readonly holder: LockOwner,
    stateDir: string,
  ) {
    super(`another duet serve (pid ${holder.pid}, since ${holder.since}) already runs on the state dir ${stateDir}`, {
      step: 'serve',
      hint: `only one duet serve may run per state_dir: stop pid ${holder.pid} first (\`systemctl stop duet\` if it is the service), or give this one its own state_dir`,
    });
  }
}

export interface ServeLock {
  release(): Promise<void>;
}

export function serveLockPath(config: Config): string {
  return join(config.stateDir, 'serve.lock');
}

/**
 * Taken before `duet serve` reads or writes anything else: two servers on one state dir would
 * both run the queue, each re-running the other's deploys. A holder killed with -9 is taken over.
 */
export async function acquireServeLock(config: Config): Promise<ServeLock> {
  const path = serveLockPath(config);
  await mkdir(config.stateDir, { recursive: true });
  const me = await identify(process.pid);
  if (!me) throw new Error('cannot read this process in /proc');
  const owner: LockOwner = { ...me, command: 'serve', since: new Date().toISOString(), token: randomUUID() };
  const taken = await pollUntil(
    async () => {
      if (await tryCreate(path, owner)) return true;
      const current = await readHolder(path);
      if (current === 'gone' || current === 'being-written') return undefined;
      if (await isSameProcessAlive(current)) throw new ServeLockedError(current, config.stateDir);
      await removeIfUnchanged(path, current);
      return undefined;
    },
    // Only a lock being written by a server starting this very moment is waited for.
    { timeoutMs: 10_000, initialIntervalMs: 5, maxIntervalMs: 100 },
  );
  if (!taken) {
    throw new DuetError(`could not take ${path}`, { step: 'serve', hint: 'remove it if no duet serve runs (check with `pgrep -af "duet.*serve"`)' });
  }
  return { release: () => removeIfUnchanged(path, owner) };
}
