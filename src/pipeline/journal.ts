import { randomBytes } from 'node:crypto';
import type { RunStep, StepName } from '../errors.js';
import { EventLog } from '../util/event-log.js';
import type { CompactedEvent } from './compacted-deploys.js';
import { isTriggerEvent, type TriggerEvent } from './trigger.js';

/**
 * The journal is an app's one stream of events, an append-only file of JSON lines: what happened
 * to each trigger (TriggerEvent, written by duet serve's queue: accepted, merged, resolved,
 * dequeued, superseded, settled) and what each run did (RunEvent, written under the app's lock:
 * begin, steps, facts, end), both under the deploy's id; and, of a deploy compacted away, its
 * summary (CompactedEvent, compacted-deploys.ts). Appending never rewrites what is there,
 * so a crash loses at most the line being written, and a torn last line is skipped on reading.
 * Records are folded from events, never stored whole.
 */

type StepStatus = 'started' | 'done' | 'skipped' | 'failed';
/** failed: the deploy's own failure; errored: a fault of duet's (error-kinds.ts decides which). */
export type Outcome = 'success' | 'noop' | 'failed' | 'errored' | 'interrupted';
/** What a journal record is of: a deploy, rollback, bootup, failover or down, or one of the act commands. */
export type DeployKind = 'deploy' | 'rollback' | 'bootup' | 'failover' | 'down' | 'start-instance' | 'stop-instance' | 'connect-to-nginx' | 'update-instance';

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

export interface DeployRecord {
  id: string;
  kind: DeployKind;
  ref: string | null;
  /** Why duet acted on its own (a failover): what it saw. */
  reason: string | null;
  resolvedRef: string | null;
  sha: string | null;
  from: string | null;
  to: string | null;
  startedAt: string;
  endedAt: string | null;
  outcome: Outcome | null;
  error: string | null;
  failedStep: StepName | null;
  totalMs: number | null;
  steps: StepRecord[];
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

export class Journal {
  private readonly log: EventLog<JournalEvent>;

  constructor(readonly path: string) {
    this.log = new EventLog(path);
  }

  /**
   * A deploy's begin and end are fsync'd: after a power cut the journal still knows every deploy
   * that started and whether it ended. Steps and facts are not (each fsync cost a deploy 1-15 ms,
   * some twenty times): a killed duet loses none of them, and after a power cut the re-run
   * converges whatever step lines are missing, because every step checks the machine first.
   */
  async append(event: JournalEvent): Promise<void> {
    await this.log.append(event, { fsync: event.type === 'begin' || event.type === 'end' });
  }

  /**
   * Keep the file open for the appends that follow, until close(): a deploy (which holds the
   * app's lock, so it is the only writer) appends some twenty lines, and each would otherwise
   * open, stat, read, write and close the file.
   */
  async hold(): Promise<void> {
    await this.log.hold();
  }

  async close(): Promise<void> {
    await this.log.release();
  }

  /** Every event; a line torn by a crash mid-append is skipped: everything before it is intact. */
  async events(): Promise<JournalEvent[]> {
    return (await this.log.read()).events;
  }

  /**
   * Compaction (journal-compaction.ts): the file replaced by what `select` keeps of its events,
   * with no append of this process in between (duet serve's trigger events wait).
   */
  async compact(select: (events: JournalEvent[]) => readonly JournalEvent[] | undefined): Promise<void> {
    await this.log.compact(select);
  }

  /** All deploys, oldest first. */
  async records(): Promise<DeployRecord[]> {
    return foldEvents(await this.events());
  }

  async record(id: string): Promise<DeployRecord | undefined> {
    return (await this.records()).find((r) => r.id === id);
  }

  /** Deploys that began and never ended: their process died. Closed by the next lock holder. */
  async unfinished(): Promise<DeployRecord[]> {
    return (await this.records()).filter((r) => r.outcome === null);
  }
}

export function foldEvents(events: JournalEvent[]): DeployRecord[] {
  const byId = new Map<string, DeployRecord>();
  for (const event of events) foldEvent(byId, event);
  return [...byId.values()];
}

/**
 * One event into the records of what ran, by id; a Map keeps them in the order they began, oldest
 * first. A trigger's events are the queue's (trigger-store.ts folds them); a deploy that was only
 * queued has no record here.
 */
export function foldEvent(byId: Map<string, DeployRecord>, event: JournalEvent): void {
  if (isTriggerEvent(event) || event.type === 'compacted') return;
  if (event.type === 'begin') {
    const earlier = byId.get(event.id);
    if (earlier) {
      // The same deploy run again after its process died (a resumed trigger): one record,
      // the steps of every attempt in order.
      Object.assign(earlier, { endedAt: null, outcome: null, error: null, failedStep: null, totalMs: null });
      markOpenStepsFailed(earlier);
      return;
    }
    byId.set(event.id, {
      id: event.id,
      kind: event.kind,
      ref: event.ref,
      reason: event.reason ?? null,
      resolvedRef: null,
      sha: null,
      from: null,
      to: null,
      startedAt: event.at,
      endedAt: null,
      outcome: null,
      error: null,
      failedStep: null,
      totalMs: null,
      steps: [],
    });
    return;
  }
  const record = byId.get(event.id);
  if (!record) return;
  if (event.type === 'fact') {
    if (event.sha !== undefined) record.sha = event.sha;
    if (event.resolvedRef !== undefined) record.resolvedRef = event.resolvedRef;
    if (event.from !== undefined) record.from = event.from;
    if (event.to !== undefined) record.to = event.to;
  } else if (event.type === 'step') {
    foldStep(record, event);
  } else if (event.type === 'end') {
    record.endedAt = event.at;
    record.outcome = event.outcome;
    record.error = event.error ?? null;
    record.failedStep = event.failedStep ?? null;
    record.totalMs = Date.parse(event.at) - Date.parse(record.startedAt);
    markOpenStepsFailed(record);
  }
}

/** A step still open when its deploy ended, or was begun again, never finished. */
function markOpenStepsFailed(record: DeployRecord): void {
  for (const step of record.steps) if (step.status === 'started') step.status = 'failed';
}

function foldStep(record: DeployRecord, event: Extract<RunEvent, { type: 'step' }>): void {
  const open = record.steps.findLast((s) => s.name === event.step && s.status === 'started');
  if (event.status === 'started' || !open) {
    record.steps.push({ name: event.step, status: event.status, startedAt: event.at, ms: event.ms ?? null, detail: event.detail ?? null });
    return;
  }
  open.status = event.status;
  open.ms = event.ms ?? null;
  open.detail = event.detail ?? null;
}
