import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config, AppConfig } from '../config/load.js';
import type { BuildSlot } from '../instance/update.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { pollUntil } from '../util/poll.js';
import { lockOwnerNow, readHolder, removeIfUnchanged, sameHolder, tryCreate, type LockOwner } from './lock-file.js';

/**
 * build_limits.concurrency: how many installs and builds run at once on the machine, across all
 * apps and all duet processes (duet serve, a `duet deploy` from a shell). Each build holds one of
 * `concurrency` slot files, <state_dir>/run/build-slot-<n>.lock, the same O_EXCL lock file the
 * deploy lock is; a slot whose holder died is taken over. A deploy that finds every slot taken
 * says so in its log, names who builds, and waits.
 */

function slotPaths(config: Config): string[] {
  return Array.from({ length: config.buildLimits.concurrency }, (_, n) => join(config.stateDir, 'run', `build-slot-${n}.lock`));
}

/** Take a free slot (or one whose holder died); undefined when every slot is held by a live process. */
async function tryTake(paths: string[], owner: LockOwner): Promise<{ path: string } | { holders: LockOwner[] }> {
  const holders: LockOwner[] = [];
  for (const path of paths) {
    if (await tryCreate(path, owner)) return { path };
    const holder = await readHolder(path);
    if (holder === 'gone' || holder === 'being-written') continue;
    if (await isSameProcessAlive(holder)) {
      holders.push(holder);
      continue;
    }
    await removeIfUnchanged(path, holder);
    if (await tryCreate(path, owner)) return { path };
  }
  return { holders };
}

/** `say` tells the deploy log (and whoever watches) that the build waits, and when it got its slot. */
export function buildSlot(config: Config, app: AppConfig, say: (line: string) => void): BuildSlot {
  return async () => {
    const paths = slotPaths(config);
    await mkdir(join(config.stateDir, 'run'), { recursive: true });
    const owner = await lockOwnerNow(`build of ${app.name}`);
    let announced = false;
    const started = Date.now();
    const taken = await pollUntil(
      async () => {
        const attempt = await tryTake(paths, owner);
        if ('path' in attempt) return attempt.path;
        if (!announced && attempt.holders.length > 0) {
          announced = true;
          const who = attempt.holders.map((holder) => `${holder.command} (pid ${holder.pid}, since ${holder.since})`).join(', ');
          say(`waiting for a build slot (build_limits.concurrency: ${paths.length}): ${who}`);
        }
        return undefined;
      },
      { timeoutMs: Number.MAX_SAFE_INTEGER, initialIntervalMs: 50, maxIntervalMs: 500 },
    );
    if (announced) say(`got a build slot after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return async () => {
      const holder = await readHolder(taken!);
      if (sameHolder(holder, owner)) await removeIfUnchanged(taken!, owner).catch(() => {});
    };
  };
}
