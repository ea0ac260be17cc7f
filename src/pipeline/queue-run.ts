import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import { DuetError } from '../errors.js';
import { deploy } from './deploy.js';
import { LockWaitAborted } from './lock.js';
import { loggingObserver } from './observer.js';
import { rollback } from './rollback.js';
import type { TriggerOutcome, TriggerRecord } from './trigger.js';

/**
 * Run one trigger's deploy or rollback, and say how it ended as the change to its record. Never
 * throws for the deploy's own failure: whatever the deploy threw is its outcome, and the queue
 * only has to save it. undefined: `signal` (shutdown) ended its wait for the app's lock.
 */
export async function runTrigger(
  config: Config,
  app: AppConfig,
  record: TriggerRecord,
  options: { logger: Logger | undefined; signal: AbortSignal },
): Promise<TriggerOutcome | undefined> {
  const { logger, signal } = options;
  const observer = loggingObserver(logger?.child({ app: record.app, deploy: record.id }));
  try {
    const result =
      record.kind === 'rollback'
        ? await rollback(config, app, { from: record.fromSha, observer, id: record.id, signal })
        : await deploy(config, app, { ref: record.ref ?? undefined, pinnedSha: record.sha ?? undefined, id: record.id, observer, signal });
    const seconds = (result.ms / 1000).toFixed(1);
    return {
      state: 'succeeded',
      sha: result.sha,
      color: result.color,
      summary:
        record.kind === 'rollback'
          ? `Rolled back to ${result.sha.slice(0, 7)} on ${result.color} in ${seconds}s`
          : result.outcome === 'noop'
            ? `Already live on ${result.color}`
            : `Live on ${result.color} in ${seconds}s`,
    };
  } catch (error) {
    if (error instanceof LockWaitAborted) {
      logger?.info({ app: app.name, deploy: record.id }, error.message);
      return undefined;
    }
    // A step that failed is the deploy's failure; anything else is duet's own error.
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    const failed = error instanceof DuetError;
    logger?.error({ app: app.name, deploy: record.id, err: reason }, failed ? 'deploy failed' : 'deploy errored');
    return {
      state: failed ? 'failed' : 'errored',
      summary: failed ? `${error.step} failed: ${reason}` : `internal error: ${reason}`,
    };
  }
}
