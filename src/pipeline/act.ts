import type { AppConfig, Config } from '../config/load.js';
import type { OutputSink } from '../util/run.js';
import type { DeployKind } from './journal.js';
import { acquireLock, type LockOwner } from './lock.js';
import { silentObserver, type DeployObserver } from './observer.js';
import { DeployRun } from './run.js';

/**
 * The frame every operation of the pipeline runs in, deploy and rollback aside (they add their
 * queue ids and pinned commits): the app's lock, so no two act on a color at once, and one
 * journal record of its kind, begun, its steps, ended, so `duet history`, the dashboard and the
 * next lock holder see what ran and how it ended, however it ended.
 */
export interface ActOptions {
  /** false: fail at once when a deploy or another act holds the lock (`--no-wait`). */
  wait: boolean;
  onWait?: (holder: LockOwner) => void;
  observer?: DeployObserver;
}

interface ActResult<T> {
  value: T;
  /** noop: there was nothing to do (bootup of an app never deployed). */
  outcome?: 'success' | 'noop';
}

export async function journaledAct<T>(
  config: Config,
  app: AppConfig,
  kind: DeployKind,
  command: string,
  options: ActOptions & { ref?: string },
  act: (run: DeployRun) => Promise<ActResult<T>>,
): Promise<T> {
  const observer = options.observer ?? silentObserver;
  const lock = await acquireLock(app, {
    command,
    wait: options.wait,
    onWait: options.onWait ?? ((holder) => observer.note(`waiting for pid ${holder.pid} (${holder.command})`)),
  });
  const run = new DeployRun(config, app, kind, observer);
  try {
    await run.begin(options.ref ?? null);
    const result = await act(run);
    await run.end(result.outcome ?? 'success');
    return result.value;
  } catch (error) {
    await run.end('failed', error);
    throw error;
  } finally {
    await lock.release();
  }
}

/** The act's output into its deploy log, and to `output` (the terminal of the CLI) as well. */
export function logAndShow(run: DeployRun, output: OutputSink | undefined): OutputSink {
  return {
    write(chunk) {
      run.log.write(chunk);
      output?.write(chunk);
    },
  };
}
