import { InternalError, type StepName } from '../errors.js';
import type { DeployKind, JournalEvent, Outcome, RunEvent, StepRecord } from './journal.js';
import type { TriggerRequest } from './trigger.js';

/**
 * A deploy: one record, folded by one transition function (`apply`) from every event of its id
 * in its app's journal, whoever wrote it: the queue's trigger events (accepted ... settled), the
 * run's (begin, steps, facts, end), or what a compaction left of it (compacted). The API, the
 * dashboard, the log stream, the metrics and the GitHub reporter all read this.
 *
 *   accepted ─> queued ─┬─> superseded
 *                 │  ^  │
 *        waiting  │  │ checked (CI green)     waiting_for_checks ─┬─> superseded
 *                 v  │                                          └─> failed (CI red) / errored (CI timed out)
 *         waiting_for_checks
 *                       ├─> running ─┬─> watching ─┬─> succeeded
 *                       │            │             ├─> failed
 *                       │            └─────────────┼─> errored
 *                       │                          └─> interrupted (its process died; a resumed trigger runs again)
 *                       ├─> failed (its start could not be saved: a full disk)
 *                       └─> errored (its app left the config)
 *
 * A run from the shell, a failover, a bootup or an act has no trigger: it begins running.
 */
export type DeployState = 'queued' | 'waiting_for_checks' | 'running' | 'watching' | 'succeeded' | 'failed' | 'errored' | 'superseded' | 'interrupted';

export interface Deploy extends Omit<TriggerRequest, 'kind' | 'source'> {
  id: string;
  state: DeployState;
  kind: DeployKind;
  /** Where the trigger came from; null: no trigger (the shell, duet itself). */
  source: TriggerRequest['source'] | null;
  receivedAt: string | null;
  /** The commit: named by the sender, resolved for the ref, or what went live. */
  resolvedSha: string | null;
  resolvedRef: string | null;
  /** The color it goes (went) live on, once known; and the one it came from. */
  color: string | null;
  from: string | null;
  /** Why duet acted on its own (a failover): what it saw. */
  reason: string | null;
  supersededBy: string | null;
  /** deploy_on.wait_for_checks: since when it waits for the commit's CI, and the commit CI passed for. */
  checksSince: string | null;
  checkedSha: string | null;
  /** A final one-line outcome: "Live on green in 8.2s", "health failed: ...". */
  summary: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** How its run ended, as the run said (a trigger's final word is `state`). */
  outcome: Extract<RunEvent, { type: 'end' }>['outcome'] | null;
  error: string | null;
  failedStep: StepName | null;
  totalMs: number | null;
  steps: StepRecord[];
  /** The process of its last run (begin); null: it never began. */
  pid: number | null;
  /** A trigger's: the queue wrote its last word (settled, superseded). */
  settled: boolean;
  /** Compacted away: only its summary is left, its steps and its log are gone. */
  compacted: boolean;
}

const FINAL: ReadonlySet<DeployState> = new Set(['succeeded', 'failed', 'errored', 'superseded', 'interrupted']);

/** A deploy in this state changes no more (its log is complete, the dashboard stops refreshing). */
export function isFinal(state: DeployState): boolean {
  return FINAL.has(state);
}

/** Whether the queue still has to run or settle it: a trigger not settled whose run did not end. */
export function isPending(deploy: Deploy): boolean {
  return deploy.source !== null && !deploy.settled && !deploy.compacted;
}

/**
 * Whether `event` may happen to `deploy` (undefined: nothing of its id yet). Writers check first
 * (checkApply: a move the state machine does not have, succeeded to running say, is a bug);
 * readers skip what does not apply (a line of a future version, a deploy compacted away).
 */
function canApply(deploy: Deploy | undefined, event: JournalEvent): boolean {
  switch (event.type) {
    case 'accepted':
    case 'compacted':
      return deploy === undefined;
    case 'seen':
      return false;
    case 'begin':
      return deploy === undefined || (!deploy.compacted && !deploy.settled);
    case 'merged':
    case 'resolved':
      // Moves no state: a delivery merged, or the commit found, just as its deploy ended is still so.
      return deploy !== undefined && deploy.source !== null && !deploy.compacted;
    case 'dequeued':
      return deploy !== undefined && isPending(deploy) && ['queued', 'running', 'watching', 'interrupted'].includes(deploy.state);
    case 'superseded':
      return deploy !== undefined && isPending(deploy) && (deploy.state === 'queued' || deploy.state === 'waiting_for_checks');
    case 'waiting':
      return deploy !== undefined && isPending(deploy) && deploy.state === 'queued' && deploy.checkedSha === null;
    case 'checked':
      return deploy !== undefined && isPending(deploy) && deploy.state === 'waiting_for_checks';
    case 'settled':
      return deploy !== undefined && isPending(deploy) && (deploy.state !== 'queued' || event.state !== 'succeeded');
    default:
      return deploy !== undefined && !deploy.compacted;
  }
}

/** Throws (a fault of duet's, never the deploy's) for an event the state machine does not have. */
export function checkApply(deploy: Deploy | undefined, event: JournalEvent): void {
  if (canApply(deploy, event)) return;
  const from = deploy ? `${deploy.state}${deploy.settled ? ', settled' : ''}` : 'nothing';
  throw new InternalError('queue', new Error(`deploy ${event.id} cannot take a ${event.type} event in state ${from}`));
}

/** The one transition function: the deploy after `event` (`deploy` itself when it does not apply). */
export function apply(deploy: Deploy | undefined, event: JournalEvent, app: string): Deploy | undefined {
  if (!canApply(deploy, event)) return deploy;
  if (event.type === 'accepted' || event.type === 'begin' || event.type === 'compacted') return created(deploy, event, app);
  const d = { ...deploy!, steps: deploy!.steps };
  switch (event.type) {
    case 'resolved':
      return { ...d, resolvedSha: event.sha };
    case 'waiting':
      return { ...d, state: 'waiting_for_checks', resolvedSha: event.sha, checksSince: event.at };
    case 'checked':
      return { ...d, state: 'queued', checkedSha: event.sha };
    case 'dequeued':
      return { ...d, state: 'running', startedAt: event.at };
    case 'superseded':
      return { ...d, state: 'superseded', settled: true, supersededBy: event.by, summary: event.summary, finishedAt: event.at };
    case 'settled':
      return {
        ...d,
        state: event.state,
        settled: true,
        summary: event.summary,
        finishedAt: event.at,
        resolvedSha: event.sha ?? d.resolvedSha,
        color: event.color ?? d.color,
      };
    case 'fact':
      return {
        ...d,
        resolvedSha: event.sha ?? d.resolvedSha,
        resolvedRef: event.resolvedRef ?? d.resolvedRef,
        from: event.from !== undefined ? event.from : d.from,
        color: event.to ?? d.color,
      };
    case 'step': {
      const steps = withStep(d.steps, event);
      const running = d.state === 'running' || d.state === 'watching';
      const watching = steps.findLast((step) => step.status === 'started')?.name === 'watch';
      return { ...d, steps, state: running ? (watching ? 'watching' : 'running') : d.state };
    }
    case 'end':
      return {
        ...d,
        // A trigger's settled line is its final word, whichever came first.
        state: d.settled ? d.state : stateOfOutcome(event.outcome),
        outcome: event.outcome,
        error: event.error ?? null,
        failedStep: event.failedStep ?? null,
        finishedAt: d.settled ? d.finishedAt : event.at,
        totalMs: d.startedAt ? Date.parse(event.at) - Date.parse(d.startedAt) : null,
        steps: openStepsFailed(d.steps),
      };
    default:
      return d;
  }
}

function stateOfOutcome(outcome: Outcome): DeployState {
  return outcome === 'interrupted' || outcome === 'failed' || outcome === 'errored' ? outcome : 'succeeded';
}

type Creating = Extract<JournalEvent, { type: 'accepted' | 'begin' | 'compacted' }>;

function created(deploy: Deploy | undefined, event: Creating, app: string): Deploy {
  // Whatever else the record says, a trigger begins queued.
  if (event.type === 'accepted') return { ...event.trigger, id: event.id, state: 'queued', settled: false, pid: null, compacted: false, steps: [] };
  if (event.type === 'compacted') {
    const { kind, ref, resolvedSha, state, summary, startedAt } = event;
    return { ...blank(event.id, app, kind), ref, resolvedSha, state, summary, startedAt, finishedAt: event.at, settled: true, compacted: true };
  }
  if (deploy) {
    // The same deploy run again after its process died (a resumed trigger): one record, the steps
    // of every attempt in order, open again.
    return { ...deploy, state: 'running', pid: event.pid, outcome: null, error: null, failedStep: null, totalMs: null, steps: openStepsFailed(deploy.steps) };
  }
  return { ...blank(event.id, app, event.kind), ref: event.ref, reason: event.reason ?? null, state: 'running', pid: event.pid, startedAt: event.at };
}

/** A deploy with nothing known yet but its id, app and kind. */
export function blank(id: string, app: string, kind: DeployKind): Deploy {
  return {
    id,
    app,
    kind,
    state: 'queued',
    ref: null,
    sha: null,
    fromSha: null,
    source: null,
    deliveryId: null,
    requestedBy: null,
    receivedAt: null,
    resolvedSha: null,
    resolvedRef: null,
    color: null,
    from: null,
    reason: null,
    supersededBy: null,
    checksSince: null,
    checkedSha: null,
    summary: null,
    startedAt: null,
    finishedAt: null,
    outcome: null,
    error: null,
    failedStep: null,
    totalMs: null,
    steps: [],
    pid: null,
    settled: false,
    compacted: false,
  };
}

/** A step still open when its deploy ended, or was begun again, never finished. */
function openStepsFailed(steps: readonly StepRecord[]): StepRecord[] {
  return steps.map((step) => (step.status === 'started' ? { ...step, status: 'failed' } : step));
}

function withStep(steps: readonly StepRecord[], event: Extract<RunEvent, { type: 'step' }>): StepRecord[] {
  const open = steps.findLastIndex((s) => s.name === event.step && s.status === 'started');
  const ended = { status: event.status, ms: event.ms ?? null, detail: event.detail ?? null };
  if (event.status === 'started' || open < 0) return [...steps, { name: event.step, startedAt: event.at, ...ended }];
  return steps.map((step, i) => (i === open ? { ...step, ...ended } : step));
}
