import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { failedStateOf } from '../error-kinds.js';
import { DISK_FULL, DiskFullError, DuetError, isDiskFull, machineError, type NotSavedError, type StepName } from '../errors.js';
import { resolveRef } from '../instance/checkout.js';
import { defaultRef, deploy } from './deploy.js';
import type { Deploy } from './deploy-state.js';
import { LockWaitAborted } from './lock.js';
import { loggingObserver } from './observer.js';
import { rollback } from './rollback.js';
import type { TriggerKind, TriggerOutcome } from './trigger.js';
import type { TriggerStore } from './trigger-store.js';

/**
 * Run one trigger's deploy or rollback, and say how it ended as the change to its record. Never
 * throws for the deploy's own failure: whatever the deploy threw is its outcome, and the queue
 * only has to save it. undefined: `signal` (shutdown) ended its wait for the app's lock.
 */
export async function runTrigger(
  config: Config,
  app: AppConfig,
  record: Deploy,
  options: { logger: Logger | undefined; signal: AbortSignal; onPicked: (color: Color) => void },
): Promise<TriggerOutcome | undefined> {
  const { logger, signal } = options;
  const observer = { ...loggingObserver(logger?.child({ app: record.app, deploy: record.id })), picked: options.onPicked };
  try {
    const result =
      record.kind === 'rollback'
        ? await rollback(config, app, { from: record.fromSha, target: record.rollbackTo, observer, id: record.id, signal })
        : record.kind === 'restart'
          ? await deploy(config, app, { restart: true, id: record.id, observer, signal })
          : await deploy(config, app, {
              ref: record.ref ?? undefined,
              // The commit whose CI passed, exactly (wait_for_checks): a newer one waits for its own.
              pinnedSha: record.checkedSha ?? record.sha ?? undefined,
              exact: record.checkedSha !== null,
              ...(record.skipChecks && { reason: 'CI not waited for (skip_checks)' }),
              id: record.id,
              breaking: record.breaking === true,
              observer,
              signal,
            });
    return {
      state: 'succeeded',
      sha: result.sha,
      color: result.color,
      summary: successSummary(record.kind, result.outcome, result.color, result.sha, result.ms),
    };
  } catch (error) {
    if (error instanceof LockWaitAborted) {
      logger?.info({ app: app.name, deploy: record.id }, error.message);
      return undefined;
    }
    const state = failedStateOf(error);
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    logger?.error({ app: app.name, deploy: record.id, err: reason }, `deploy ${state}`);
    if (state === 'errored') return { state, summary: `internal error: ${reason}` };
    // What the machine refused outside a step is said in the system's words, a full disk named.
    const failure = error instanceof DuetError ? error : machineError(undefined, error as NodeJS.ErrnoException, config.stateDir);
    return { state, summary: failureSummary(failure.step, failure.message) };
  }
}

/**
 * How a trigger's run ended, from the run's end, when the trigger's own `settled` line is missing
 * (duet serve stopped, or the disk was full, between the two): the run's end decides, and a run
 * that ended is never run again. undefined: it did not end (or was closed as interrupted): duet
 * serve died during it, and it is resumed.
 */
export function outcomeOfRun(run: Deploy): TriggerOutcome | undefined {
  if (!run.outcome || run.outcome === 'interrupted') return undefined;
  if (run.outcome === 'failed') return { state: 'failed', summary: failureSummary(run.failedStep, run.error ?? 'it failed') };
  if (run.outcome === 'errored') return { state: 'errored', summary: `internal error: ${(run.error ?? 'it failed').split('\n')[0]}` };
  const { color, resolvedSha: sha } = run;
  const summary = successSummary(run.kind, run.outcome, color ?? 'its color', sha ?? '', run.totalMs ?? 0);
  return { state: 'succeeded', ...(sha ? { sha } : {}), ...(color ? { color } : {}), summary };
}

/** Why a trigger whose start the journal did not take ends failed without running (its summary). */
export function notStarted(record: Deploy, error: NotSavedError, stateDir: string, logger: Logger | undefined): string {
  logger?.error({ app: record.app, deploy: record.id, err: error.message, hint: error.hint }, 'could not save the start of a deploy');
  const what = 'its start could not be saved in the journal, so it did not start';
  const failure = isDiskFull(error)
    ? new DiskFullError('queue', what, stateDir, error)
    : new DuetError(`${what} (${error.cause instanceof Error ? error.cause.message : error.message})`, { step: 'queue' });
  return failureSummary(failure.step, failure.message);
}

/** A failure's one line, "<step> failed: <reason>"; a full disk's message says where itself (DiskFullError). */
function failureSummary(step: StepName | null | undefined, message: string): string {
  const reason = message.split('\n')[0]!;
  return reason.startsWith(DISK_FULL) || !step ? reason : `${step} failed: ${reason}`;
}

function successSummary(kind: TriggerKind | Deploy['kind'], outcome: 'success' | 'noop', color: string, sha: string, ms: number): string {
  const seconds = (ms / 1000).toFixed(1);
  if (kind === 'rollback') return `Rolled back to ${sha.slice(0, 7)} on ${color} in ${seconds}s`;
  if (kind === 'restart') return `Restarted ${sha.slice(0, 7)} on ${color} in ${seconds}s`;
  return outcome === 'noop' ? `Already live on ${color}` : `Live on ${color} in ${seconds}s`;
}

/** The record to announce as queued: with its commit, found when the sender did not name it. */
export async function withCommit(store: TriggerStore, app: AppConfig, record: Deploy, logger: Logger | undefined): Promise<Deploy> {
  if (!record.resolvedSha && record.kind === 'deploy') {
    try {
      const resolved = await resolveRef(app.clone_url, record.ref ?? defaultRef(app));
      if (store.get(record.id)?.resolvedSha === null) await store.record(record.id, { type: 'resolved', sha: resolved.sha });
    } catch (error) {
      logger?.warn({ app: app.name, deploy: record.id, err: (error as Error).message }, 'could not resolve the ref yet');
    }
  }
  return store.get(record.id)!;
}
