import type { AppConfig, Config } from '../config/load.js';
import { otherColor } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { preparedRelease } from '../instance/update.js';
import { configuredColor } from '../switch/proxy.js';
import { liveRevision, recordStep, releaseFailedNote, type DeployResult } from './deploy.js';
import { goLive } from './go-live.js';
import { acquireLock } from './lock.js';
import type { DeployObserver } from './observer.js';
import { DeployRun } from './run.js';

/**
 * Switch back to the other color, which still holds the previous release: start it if it was
 * stopped, health-check it, switch. Nothing is fetched or built.
 */
export async function rollback(
  config: Config,
  app: AppConfig,
  options: { wait?: boolean; signal?: AbortSignal; observer: DeployObserver; id?: string },
): Promise<DeployResult> {
  const lock = await acquireLock(app, {
    command: 'rollback',
    wait: options.wait ?? true,
    onWait: (holder) => options.observer.note(`waiting for the lock held by pid ${holder.pid} (${holder.command})`),
    onReleaseFailed: (error) => options.observer.note(releaseFailedNote(error)),
    signal: options.signal,
  });
  const run = new DeployRun(config, app, 'rollback', options.observer, options.id);
  try {
    await run.begin(null);
    const live = await configuredColor(app, config);
    if (!live) throw new DuetError(`nothing is live for ${app.name}: there is nothing to roll back from`, { step: 'pick', hint: 'run `duet deploy` first' });
    const target = otherColor(live);
    const prepared = await run.step('pick', `check that ${target} holds the previous release`, async () => {
      const record = await preparedRelease(app, target);
      if (!record) {
        throw new DuetError(`${target} holds no completely prepared release to roll back to`, {
          step: 'pick',
          hint: `deploy a known-good ref instead: duet deploy --ref <tag>`,
        });
      }
      if (record.sha === (await liveRevision(app, live))) {
        throw new DuetError(`${target} holds the same commit as the live ${live} (${record.sha.slice(0, 7)}): rolling back would change nothing`, {
          step: 'pick',
          hint: 'deploy an earlier ref instead: duet deploy --ref <tag>',
        });
      }
      return { value: record, detail: `${target} holds ${record.ref} (${record.sha.slice(0, 7)})` };
    });
    await run.fact({ sha: prepared.sha, resolvedRef: prepared.ref, from: live, to: target });
    await goLive(run, target, prepared);
    await recordStep(run, `rolled back to ${prepared.ref} on ${target}`);
    await run.end('success');
    return { id: run.id, outcome: 'success', color: target, sha: prepared.sha, ms: run.elapsedMs };
  } catch (error) {
    await run.end('failed', error);
    throw error;
  } finally {
    await lock.release();
  }
}
