import type { Logger } from 'pino';
import type { AppConfig } from '../config/load.js';
import { InvalidInputError } from '../errors.js';
import { refNameProblem, validateCommitPrefix } from '../instance/git-ref.js';
import type { RollbackTarget } from '../pipeline/release-pick.js';
import type { SubmitResult, TriggerKind, TriggerQueue } from '../pipeline/trigger.js';

/**
 * A deploy, rollback or restart someone asked for by hand: the API with its bearer token, the
 * dashboard with a signed-in session. One way into the queue for both, so a button does exactly
 * what the API call does, and the record says who asked.
 */
interface ManualTrigger {
  app: AppConfig;
  kind: TriggerKind;
  ref: string | null;
  fromSha: string | null;
  /** A rollback to a kept release (`to` or `steps`); undefined: to the standby color's. */
  rollbackTo?: RollbackTarget;
  breaking: boolean;
  /** deploy_on.wait_for_checks: deploy without waiting for CI (journaled in the trigger). */
  skipChecks?: boolean;
  /** For the record: "API", "dashboard session 1a2b3c4d (198.51.100.7)". */
  requestedBy: string;
  ip: string | undefined;
}

export async function submitManual(queue: TriggerQueue, logger: Logger, ask: ManualTrigger): Promise<SubmitResult> {
  const { app, kind, ref, fromSha, requestedBy } = ask;
  const breaking = kind === 'deploy' && ask.breaking ? { breaking: true as const } : {};
  const rollbackTo = kind === 'rollback' && ask.rollbackTo ? { rollbackTo: ask.rollbackTo } : {};
  const result = await queue.submit({
    app: app.name,
    kind,
    ref,
    sha: null,
    fromSha,
    source: 'manual',
    deliveryId: null,
    requestedBy,
    ...breaking,
    ...rollbackTo,
    ...(kind === 'deploy' && ask.skipChecks ? { skipChecks: true as const } : {}),
  });
  logger.info({ app: app.name, kind, ref, from: fromSha, deploy: result.id, created: result.created, ip: ask.ip, requestedBy }, 'manual trigger accepted');
  return result;
}

/** A deploy's ref as asked for; null (absent) deploys the default branch. */
export function manualRef(ref: unknown): string | null {
  if (ref === undefined || ref === null) return null;
  const problem = refNameProblem(ref);
  if (problem !== undefined) throw new InvalidInputError(`invalid ref: ${problem}`, { step: 'resolve' });
  return ref as string;
}

/**
 * Required: a rollback without the commit it undoes would be a toggle, and two operators undoing
 * one bad deploy would put it back.
 */
export function manualFrom(from: unknown, app: AppConfig): string {
  if (from === undefined || from === null) {
    throw new InvalidInputError('a rollback names the commit it undoes: send {"from": "<sha>"} with the commit live now', {
      step: 'pick',
      hint: `GET /apps/${app.name}/status shows it: colors[enabled].revision (or duet status ${app.name}); a rollback whose commit is no longer live changes nothing (409)`,
    });
  }
  return validateCommitPrefix(from, 'from');
}
