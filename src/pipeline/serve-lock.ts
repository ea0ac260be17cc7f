import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/load.js';
import { DuetError } from '../errors.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { pollUntil } from '../util/poll.js';
import { lockOwnerNow, readHolder, removeIfUnchanged, tryCreate, type LockOwner } from './lock-file.js';

/** Another `duet serve` already runs on this state dir. */
class ServeLockedError extends DuetError {
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

interface ServeLock {
  release(): Promise<void>;
}

function serveLockPath(config: Pick<Config, 'stateDir'>): string {
  return join(config.stateDir, 'serve.lock');
}

/** The state dirs whose serve lock this process holds (it is their duet serve). */
const servingHere = new Set<string>();

/** The command a short holder of the serve lock names (journal compaction): serve waits for it. */
const BRIEF_HOLDER = 'brief: ';

/**
 * Taken before `duet serve` reads or writes anything else: two servers on one state dir would
 * both run the queue, each re-running the other's deploys. A holder killed with -9 is taken over.
 */
export async function acquireServeLock(config: Pick<Config, 'stateDir'>): Promise<ServeLock> {
  const path = serveLockPath(config);
  await mkdir(config.stateDir, { recursive: true });
  const owner = await lockOwnerNow('serve');
  const taken = await pollUntil(
    async () => {
      if (await tryCreate(path, owner)) return true;
      const current = await readHolder(path);
      if (current === 'gone' || current === 'being-written') return undefined;
      if (await isSameProcessAlive(current)) {
        // A command that holds it for a moment (journal compaction) is waited for; a server is not.
        if (current.command.startsWith(BRIEF_HOLDER)) return undefined;
        throw new ServeLockedError(current, config.stateDir);
      }
      await removeIfUnchanged(path, current);
      return undefined;
    },
    // Only a lock being written by a server starting this very moment, or held briefly, is waited for.
    { timeoutMs: 10_000, initialIntervalMs: 5, maxIntervalMs: 100 },
  );
  if (!taken) {
    throw new DuetError(`could not take ${path}`, { step: 'serve', hint: 'remove it if no duet serve runs (check with `pgrep -af "duet.*serve"`)' });
  }
  servingHere.add(config.stateDir);
  return {
    release: async () => {
      servingHere.delete(config.stateDir);
      await removeIfUnchanged(path, owner);
    },
  };
}

/**
 * Run `work` where no duet serve of this state dir can write meanwhile: in duet serve's own
 * process, or (from the CLI) with its lock taken for the moment. Skipped, returning undefined,
 * while another process serves (or is starting to): that server's next deploy does the work.
 */
export async function withServeLockUnlessServing<T>(config: Pick<Config, 'stateDir'>, what: string, work: () => Promise<T>): Promise<T | undefined> {
  if (servingHere.has(config.stateDir)) return work();
  const path = serveLockPath(config);
  const owner = await lockOwnerNow(`${BRIEF_HOLDER}${what}`);
  await mkdir(config.stateDir, { recursive: true });
  if (!(await tryCreate(path, owner))) {
    const current = await readHolder(path);
    if (current === 'gone' || current === 'being-written' || (await isSameProcessAlive(current))) return undefined;
    // A server killed with -9 left it: taken over, as the next duet serve would.
    await removeIfUnchanged(path, current);
    if (!(await tryCreate(path, owner))) return undefined;
  }
  try {
    return await work();
  } finally {
    await removeIfUnchanged(path, owner);
  }
}
