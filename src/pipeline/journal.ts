import { randomBytes } from 'node:crypto';
import type { RunStep, StepName } from '../errors.js';
import type { CompactedEvent } from './compacted-deploys.js';
import type { TriggerEvent } from './trigger.js';

/**
 * The journal is an app's one stream of events, an append-only file of JSON lines: what happened
 * to each trigger (TriggerEvent, written by duet serve's queue: accepted, merged, resolved,
 * dequeued, superseded, settled) and what each run did (RunEvent, written under the app's lock:
 * begin, steps, facts, end), both under the deploy's id; and, of a deploy compacted away, its
 * summary (CompactedEvent, compacted-deploys.ts). Appending never rewrites what is there,
 * so a crash loses at most the line being written, and a torn last line is skipped on reading.
 * One AppJournal (app-journal.ts) per app per process owns the file; every event is folded by
 * one `apply` (deploy-state.ts) into one Deploy record.
 */

type StepStatus = 'started' | 'done' | 'skipped' | 'failed';
/** failed: the deploy's own failure; errored: a fault of duet's (error-kinds.ts decides which). */
export type Outcome = 'success' | 'noop' | 'failed' | 'errored' | 'interrupted';
/** What a deploy is: a deploy, rollback, restart (a trigger's), bootup, failover or down, or one of the act commands. */
export type DeployKind =
  'deploy' | 'rollback' | 'restart' | 'bootup' | 'failover' | 'down' | 'start-instance' | 'stop-instance' | 'connect-to-nginx' | 'update-instance';

export type RunEvent =
  | { type: 'begin'; id: string; at: string; kind: DeployKind; ref: string | null; pid: number; reason?: string }
  | { type: 'step'; id: string; at: string; step: RunStep; status: StepStatus; ms?: number; detail?: string }
  | { type: 'fact'; id: string; at: string; sha?: string; resolvedRef?: string; from?: string | null; to?: string }
  | { type: 'end'; id: string; at: string; outcome: Outcome; error?: string; failedStep?: StepName };

/** Run events, trigger events, and what a compaction left of a deploy it dropped. */
export type JournalEvent = RunEvent | TriggerEvent | CompactedEvent;

export interface StepRecord {
  name: RunStep;
  status: StepStatus;
  startedAt: string;
  ms: number | null;
  detail: string | null;
}

const ID_PATTERN = /^\d{8}-\d{6}-[0-9a-f]{6}$/;

/** Sortable, unique enough for one machine, and safe to use as a file name. */
export function newDeployId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** Ids arrive from command lines and URLs: only ours may reach the file system. */
export function isDeployId(value: string): boolean {
  return ID_PATTERN.test(value);
}
