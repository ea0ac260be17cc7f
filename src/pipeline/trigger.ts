import type { Deploy } from './deploy-state.js';
import type { RollbackTarget } from './release-pick.js';

/**
 * A trigger is a request to deploy (or roll back) an app, from a webhook, the manual API or the
 * CLI. Once accepted it is durably recorded and has the id its deploy will carry, so the
 * acknowledgement, the commit status link, the journal and the log all name the same thing: its
 * events are folded into that Deploy (deploy-state.ts).
 */

type TriggerSource = 'push' | 'release' | 'manual' | 'resume';
/** restart: a config deploy of the live commit (`duet restart`, POST /apps/:app/restart). */
export type TriggerKind = 'deploy' | 'rollback' | 'restart';

export interface TriggerRequest {
  app: string;
  kind: TriggerKind;
  /** What to deploy: a branch, tag or full ref name (refs/tags/v2), or a sha. Validated before. */
  ref: string | null;
  /** The commit, when the sender already knows it (a push names its head commit). */
  sha: string | null;
  /**
   * A rollback's: the commit it undoes (whole or abbreviated), which must be live when it runs,
   * else it changes nothing. null for a deploy.
   */
  fromSha: string | null;
  /** A rollback's kept release (`{"to": ...}` or `{"steps": N}`); none: the standby color's. */
  rollbackTo?: RollbackTarget;
  source: TriggerSource;
  /** X-GitHub-Delivery: a delivery is accepted once. */
  deliveryId: string | null;
  /**
   * sha256 of the signed webhook body. The delivery id is not signed: an old body sent again
   * under a new id is the same delivery, and is accepted once too.
   */
  bodyDigest?: string;
  /** Who asked, for the record: "push by octocat", "API token", ... */
  requestedBy: string | null;
  /** A deploy of a breaking release (`{"breaking": true}`: pipeline/breaking.ts). */
  breaking?: true;
  /** Deploys without waiting for CI (deploy_on.wait_for_checks): `{"skip_checks": true}`. */
  skipChecks?: true;
}

/** How a trigger that ran ended, as its runner tells the queue (queue-run.ts). */
export interface TriggerOutcome {
  state: 'succeeded' | 'failed' | 'errored';
  summary: string;
  /** The commit that went live, and on which color (a success). */
  sha?: string;
  color?: string;
}

/**
 * What happens to a trigger, one typed event each, appended to its app's journal next to the
 * events of the deploy it runs (journal.ts): the same file, the same id. Each is fsync'd before
 * anyone is told (a 202, a commit status). `accepted` holds the whole record.
 */
export type TriggerEvent =
  | { type: 'accepted'; id: string; at: string; trigger: Deploy }
  /** A delivery found to ask for the deploy this trigger already does: its id and its body count as seen. */
  | { type: 'merged'; id: string; at: string; deliveryId: string | null; bodyDigest?: string }
  | { type: 'resolved'; id: string; at: string; sha: string }
  /** deploy_on.wait_for_checks: it waits for CI on `sha`; `checked`: CI passed, it is queued again. */
  | { type: 'waiting'; id: string; at: string; sha: string }
  | { type: 'checked'; id: string; at: string; sha: string; summary: string }
  /** Its turn came: it runs. The run picks its color (its `to` fact), and `settled` names it. */
  | { type: 'dequeued'; id: string; at: string }
  | { type: 'superseded'; id: string; at: string; by: string; summary: string }
  | ({ type: 'settled'; id: string; at: string } & TriggerOutcome)
  /**
   * Written by a compaction in place of the lines of a trigger it drops, while the deliveries
   * that asked for it may still be sent again (seen-deliveries.ts): their ids and body digests,
   * `at` the last time one was accepted. Moves no trigger.
   */
  | { type: 'seen'; id: string; at: string; deliveries: string[]; bodyDigests: string[] };

const TRIGGER_EVENT_TYPES: ReadonlySet<string> = new Set(['accepted', 'merged', 'resolved', 'waiting', 'checked', 'dequeued', 'superseded', 'settled', 'seen']);

export function isTriggerEvent(event: { type: string }): event is TriggerEvent {
  return TRIGGER_EVENT_TYPES.has(event.type);
}

export interface SubmitResult {
  id: string;
  /** false when an earlier trigger already covers this one (same delivery, same queued ref). */
  created: boolean;
  /** Why it was merged into an existing trigger. */
  reason?: string;
}

/** Who follows the queue's triggers (the commit status reporter, the metrics); each implements what it needs. */
export interface TriggerObserver {
  queued?(trigger: Deploy): void;
  /** It waits for CI (deploy_on.wait_for_checks): how far CI is, "waiting for CI: 3 of 5 checks done". */
  waiting?(trigger: Deploy, progress: string): void;
  started?(trigger: Deploy, color: string | null): void;
  finished?(trigger: Deploy): void;
}

/** What the HTTP side needs of the deploy queue (src/pipeline/queue.ts implements it). */
export interface TriggerQueue {
  /** Durably records the trigger (fsync) before resolving: a 202 after this is a promise kept. */
  submit(request: TriggerRequest): Promise<SubmitResult>;
  /** Triggers waiting (not running) for one app or all. */
  depth(app?: string): number;
  /** A webhook said the CI of `sha` changed: a deploy waiting for it asks GitHub now. How many were woken. */
  wakeChecks?(repo: string, sha: string): number;
}

/**
 * Whether an already waiting or running trigger deploys exactly what `request` asks for: the
 * same ref and the same commit. Tags do not move, so the same tag is the same deploy even when
 * one side (a release) did not name the commit; a branch without a commit may have moved.
 */
export function coversSameDeploy(existing: Deploy, request: TriggerRequest): boolean {
  if (existing.kind !== request.kind) return false;
  // Two rollbacks of one commit are one rollback; one named in full, the other abbreviated, too.
  if (request.kind === 'rollback') {
    const sameTarget = JSON.stringify(existing.rollbackTo ?? null) === JSON.stringify(request.rollbackTo ?? null);
    return existing.state === 'queued' && sameTarget && sameCommit(existing.fromSha, request.fromSha);
  }
  // A restart not begun yet will read the env files as they are when it runs: a second is the same.
  if (request.kind === 'restart') return existing.state === 'queued';
  if (existing.ref !== request.ref || existing.breaking !== request.breaking || existing.skipChecks !== request.skipChecks) return false;
  if (existing.sha && request.sha) return existing.sha === request.sha;
  return (request.ref ?? '').startsWith('refs/tags/');
}

function sameCommit(a: string | null, b: string | null): boolean {
  return a !== null && b !== null && (a.startsWith(b) || b.startsWith(a));
}
