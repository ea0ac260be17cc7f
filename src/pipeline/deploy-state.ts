import { InternalError } from '../errors.js';
import type { DeployRecord } from './journal.js';
import type { TriggerRecord, TriggerState } from './trigger.js';

/**
 * A deploy's state, one type for everyone who shows or acts on it: the API, the dashboard, the
 * log stream. Two records know a deploy (architecture.md): the queue's trigger, which moves
 * through the TriggerState subset (stored in triggers.ndjson), and the journal's record of what
 * ran. `deployState` is the one place the two are read into a state, and `checkTransition` the
 * one place a trigger's state may change.
 *
 *   queued ─┬─> superseded
 *           ├─> running ─┬─> watching ─┬─> succeeded
 *           │            │             ├─> failed
 *           │            └─────────────┼─> errored
 *           │                          └─> interrupted (its process died; a resumed trigger runs again)
 *           └─> errored (its app left the config, or its start could not be saved)
 */
export type DeployState = TriggerState | 'watching' | 'interrupted';

const FINAL: ReadonlySet<DeployState> = new Set(['succeeded', 'failed', 'errored', 'superseded', 'interrupted']);

/** A deploy in this state changes no more (its log is complete, the dashboard stops refreshing). */
export function isFinal(state: DeployState): boolean {
  return FINAL.has(state);
}

/** The moves a stored trigger may make: running -> running is a deploy resumed after a restart. */
const MOVES: Readonly<Record<TriggerState, readonly TriggerState[]>> = {
  queued: ['running', 'superseded', 'errored'],
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

/**
 * What state a deploy is in, from its trigger (absent: started from the CLI, or an act), its
 * journal record (absent: not started yet), or both. The trigger's final state wins; then the
 * journal's outcome (the queue may lag it by a moment); then what the journal says is running.
 */
export function deployState(trigger: TriggerRecord | undefined, record: DeployRecord | undefined): DeployState {
  if (trigger && (FINAL.has(trigger.state) || trigger.state === 'queued')) return trigger.state;
  if (record?.outcome) {
    if (record.outcome === 'interrupted') return 'interrupted';
    return record.outcome === 'failed' ? 'failed' : 'succeeded';
  }
  if (record?.steps.findLast((step) => step.status === 'started')?.name === 'watch') return 'watching';
  return record || trigger ? 'running' : 'queued';
}
