import { InternalError } from '../errors.js';
import type { DeployRecord, JournalEvent } from './journal.js';
import { isTriggerEvent, type TriggerEvent, type TriggerRecord, type TriggerState } from './trigger.js';

/**
 * A deploy's state, one type for everyone who shows or acts on it: the API, the dashboard, the
 * log stream. One stream of events knows a deploy, its app's journal (architecture.md): the
 * trigger's events (TriggerEvent: accepted ... settled), folded by `applyTriggerEvent` through
 * the TriggerState subset, and the events of what ran (begin, steps, end), folded into the
 * journal's DeployRecord. `deployState` is the one place the two folds are read into a state.
 *
 *   queued ─┬─> superseded
 *           ├─> running ─┬─> watching ─┬─> succeeded
 *           │            │             ├─> failed
 *           │            └─────────────┼─> errored
 *           │                          └─> interrupted (its process died; a resumed trigger runs again)
 *           ├─> failed (its start could not be saved: a full disk)
 *           └─> errored (its app left the config)
 */
export type DeployState = TriggerState | 'watching' | 'interrupted';

const FINAL: ReadonlySet<DeployState> = new Set(['succeeded', 'failed', 'errored', 'superseded', 'interrupted']);

/** A deploy in this state changes no more (its log is complete, the dashboard stops refreshing). */
export function isFinal(state: DeployState): boolean {
  return FINAL.has(state);
}

/** The moves a stored trigger may make: running -> running is a deploy resumed after a restart. */
const MOVES: Readonly<Record<TriggerState, readonly TriggerState[]>> = {
  queued: ['running', 'superseded', 'failed', 'errored'],
  running: ['running', 'succeeded', 'failed', 'errored'],
  succeeded: [],
  failed: [],
  errored: [],
  superseded: [],
};

/** Throws (a fault of duet's, never the deploy's) for a move the state machine does not have. */
export function checkTransition(id: string, from: TriggerState, to: TriggerState): void {
  if (!MOVES[from].includes(to)) throw new InternalError('queue', new Error(`trigger ${id} cannot go from ${from} to ${to}`));
}

/** The state a trigger event moves its trigger to; undefined: it does not move it. */
export function stateAfter(event: TriggerEvent): TriggerState | undefined {
  switch (event.type) {
    case 'dequeued':
      return 'running';
    case 'superseded':
      return 'superseded';
    case 'settled':
      return event.state;
    default:
      return undefined;
  }
}

/** Whether `event` may happen to `record` (undefined: not accepted yet) at all. */
export function canApply(record: TriggerRecord | undefined, event: TriggerEvent): boolean {
  if (event.type === 'accepted') return record === undefined;
  if (!record) return false;
  const to = stateAfter(event);
  return to === undefined || MOVES[record.state].includes(to);
}

/**
 * The one transition function of a trigger: its record after `event`. Writers check first
 * (canApply, or checkTransition's error); readers of the journal skip what does not apply (a line
 * of a future version, a trigger compacted away) instead of failing to start.
 */
export function applyTriggerEvent(record: TriggerRecord | undefined, event: TriggerEvent): TriggerRecord | undefined {
  if (!canApply(record, event)) return record;
  switch (event.type) {
    case 'accepted':
      return { ...event.trigger };
    case 'merged':
    case 'seen':
      return record;
    case 'resolved':
      return { ...record!, resolvedSha: event.sha };
    case 'dequeued':
      return { ...record!, state: 'running', startedAt: event.at, color: event.color };
    case 'superseded':
      return { ...record!, state: 'superseded', supersededBy: event.by, summary: event.summary, finishedAt: event.at };
    case 'settled':
      return {
        ...record!,
        state: event.state,
        summary: event.summary,
        finishedAt: event.at,
        resolvedSha: event.sha ?? record!.resolvedSha,
        color: event.color ?? record!.color,
      };
  }
}

/** Every trigger of a journal's events (its runs' events are passed over), by id, in the order accepted. */
export function foldTriggers(events: readonly JournalEvent[]): Map<string, TriggerRecord> {
  const triggers = new Map<string, TriggerRecord>();
  for (const event of events) {
    if (!isTriggerEvent(event)) continue;
    const next = applyTriggerEvent(triggers.get(event.id), event);
    if (next) triggers.set(event.id, next);
  }
  return triggers;
}

/**
 * What state a deploy is in, from its trigger (absent: started from the CLI, or an act), its
 * journal record (absent: not started yet), or both. The trigger's final state wins; then the
 * journal's outcome (the queue may lag it by a moment); then what the journal says is running.
 */
export function deployState(trigger: TriggerRecord | undefined, record: DeployRecord | undefined): DeployState {
  if (trigger && (FINAL.has(trigger.state) || trigger.state === 'queued')) return trigger.state;
  if (record?.outcome) {
    if (record.outcome === 'interrupted' || record.outcome === 'failed' || record.outcome === 'errored') return record.outcome;
    return 'succeeded';
  }
  if (record?.steps.findLast((step) => step.status === 'started')?.name === 'watch') return 'watching';
  return record || trigger ? 'running' : 'queued';
}
