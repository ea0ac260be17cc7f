import type { AppConfig, Config } from '../config/load.js';
import type { OutputSink } from '../util/run.js';
import type { DeployKind } from './journal.js';
import { acquireLock, type LockOwner } from './lock.js';
import { silentObserver, type DeployObserver } from './observer.js';
import { DeployRun } from './run.js';

/**
 * The one frame every operation of the pipeline runs in (deploy, rollback, failover, bootup,
 * down and the acts): the app's lock, so no two act on a color at once, and one journal record
 * of its kind, begun, its steps, ended however it ended, so that `duet history`, the dashboard
 * and the next lock holder see what ran; then the lock's release.
 */
export interface OperationOptions {
  /** false: fail at once when another operation holds the lock (`--no-wait`, a failover). */
  wait: boolean;
  /** Told once when the lock is held by another process; a note to the observer by default. */
  onWait?: (holder: LockOwner) => void;
  /** Gives up waiting for the lock (duet serve stopping); an operation that holds it runs on. */
  signal?: AbortSignal;
  observer?: DeployObserver;
}

interface Operation extends OperationOptions {
  kind: DeployKind;
  /** What the lock file says its holder runs (`deploy v2`), for whoever waits for it. */
  command: string;
  /** An id handed out earlier (the queue's trigger id); a new one otherwise. */
  id?: string;
  ref?: string | null;
  /** Why it runs, when duet acted on its own (a failover) or was told what to do (a restart). */
  reason?: string;
}

interface OperationResult<T> {
  value: T;
  /** noop: there was nothing to do (already live, bootup of an app never deployed). */
  outcome?: 'success' | 'noop';
  /** Work after the journal's end, still under the lock (nobody waits on it, no deploy runs meanwhile). */
  afterEnd?: () => Promise<void>;
}

export async function runOperation<T>(
  config: Config,
  app: AppConfig,
  operation: Operation,
  steps: (run: DeployRun) => Promise<OperationResult<T>>,
): Promise<T> {
  const observer = operation.observer ?? silentObserver;
  const lock = await acquireLock(app, {
    command: operation.command,
    wait: operation.wait,
    onWait: operation.onWait ?? ((holder) => observer.note(`waiting for the lock held by pid ${holder.pid} (${holder.command}, since ${holder.since})`)),
    onReleaseFailed: (error) => observer.note(`could not remove the deploy lock (${error.message}); duet retries until the state dir is writable again`),
    signal: operation.signal,
  });
  const run = new DeployRun(config, app, operation.kind, observer, operation.id);
  try {
    let result: OperationResult<T>;
    try {
      await run.begin(operation.ref ?? null, operation.reason);
      result = await steps(run);
    } catch (error) {
      await run.end('failed', error);
      throw error;
    }
    await run.end(result.outcome ?? 'success');
    await result.afterEnd?.();
    return result.value;
  } finally {
    await lock.release();
  }
}

/** The operation's output into its deploy log, and to `output` (the terminal of the CLI) as well. */
export function logAndShow(run: DeployRun, output: OutputSink | undefined): OutputSink {
  return {
    write(chunk) {
      run.log.write(chunk);
      output?.write(chunk);
    },
  };
}
