import { existsSync } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/load.js';
import { appPaths } from '../config/paths.js';
import { NotSavedError } from '../errors.js';
import { EventLog } from '../util/event-log.js';
import { applyTriggerEvent, canApply, checkTransition, stateAfter } from './deploy-state.js';
import type { JournalEvent } from './journal.js';
import { SeenDeliveries } from './seen-deliveries.js';
import { isTriggerEvent, type TriggerEvent, type TriggerRecord, type TriggerRequest } from './trigger.js';

/**
 * The queue's triggers, folded from their events in each app's journal (trigger.ts: accepted,
 * merged, resolved, dequeued, superseded, settled). A trigger is acknowledged (202) only after
 * its line is on disk, so a crash right after the answer loses nothing; on start the journals are
 * folded back into records and unfinished ones are resumed.
 *
 * duet serve is the only writer of trigger events; a deploy appends its run's events to the same
 * file under the app's lock, and compacts it (journal-compaction.ts). This store keeps in memory
 * what the dashboard needs, trimmed to the recent finished ones, and, apart from that and for
 * longer, the deliveries each app accepted (seen-deliveries.ts): a redelivery or a replayed body
 * is a duplicate for 3 days, whatever else arrived meanwhile.
 */

/** A trigger event as a caller gives it: the store stamps the id and the time. */
export type TriggerChange = TriggerEvent extends infer E ? (E extends TriggerEvent ? Omit<E, 'id' | 'at'> : never) : never;

export interface TriggerStoreFiles {
  /** The apps whose journals hold triggers to read: the configured ones, and any left in the state dir. */
  apps: readonly string[];
  /** Where an app's journal is (its triggers' events go there too). */
  journalOf: (app: string) => string;
  /**
   * `<state_dir>/triggers.ndjson`, where versions before the one stream kept triggers: read once
   * at open, each trigger moved into its app's journal as one line, then removed.
   */
  legacy?: string;
}

export interface TriggerStoreOptions {
  /** Finished triggers kept in memory: enough for the dashboard (the dedupe of deliveries keeps its own). */
  keepFinished?: number;
}

/** The lines of triggers.ndjson as versions before the one stream wrote them. */
type LegacyEvent =
  { op: 'accepted'; record: TriggerRecord } | { op: 'update'; id: string; patch: Partial<TriggerRecord> } | { op: 'alias'; deliveryId: string; id: string };

export class TriggerStore {
  private readonly records = new Map<string, TriggerRecord>();
  private readonly seen = new SeenDeliveries();
  private readonly logs = new Map<string, EventLog<JournalEvent>>();
  private readonly keepFinished: number;
  private appendedSinceTrim = 0;

  constructor(
    private readonly files: TriggerStoreFiles,
    options: TriggerStoreOptions = {},
  ) {
    this.keepFinished = options.keepFinished ?? 500;
  }

  async open(): Promise<void> {
    for (const app of this.files.apps) {
      // A line torn by a crash mid-append is skipped: its trigger was never acknowledged.
      for (const event of (await this.logOf(app).read()).events) if (isTriggerEvent(event)) this.apply(app, event);
    }
    if (this.files.legacy && existsSync(this.files.legacy)) await this.upgrade(this.files.legacy);
    this.trim();
    // duet serve is the only writer of trigger events: one handle per journal for its life.
    for (const log of this.logs.values()) await log.hold();
  }

  all(): TriggerRecord[] {
    return [...this.records.values()];
  }

  get(id: string): TriggerRecord | undefined {
    return this.records.get(id);
  }

  /** The trigger `request` is a delivery of again: the same delivery id, or the same signed body under any. */
  duplicateOf(request: TriggerRequest): { id: string; reason: string } | undefined {
    return this.seen.duplicateOf(request);
  }

  async accept(record: TriggerRecord): Promise<void> {
    await this.write(record.app, { type: 'accepted', id: record.id, at: record.receivedAt, trigger: record });
  }

  /** Record what happened to trigger `id`; the state machine (deploy-state.ts) checks the move. */
  async record(id: string, change: TriggerChange): Promise<TriggerRecord> {
    const event = this.stamp(id, change);
    const current = this.checkMove(event);
    await this.write(current.app, event);
    return this.records.get(id)!;
  }

  /**
   * record(), and when the journal cannot take it (a full disk), the change applied in memory
   * anyway, marked with why (`unsaved`): a deploy that ran did run, and the dashboard, the API
   * and the commit status should say so while the file lags. What it lags on, the next start of
   * duet serve re-runs (a deploy converges) from the state the file does have.
   */
  async recordOrMark(id: string, change: TriggerChange): Promise<{ record: TriggerRecord; unsaved?: string; error?: NotSavedError }> {
    try {
      return { record: await this.record(id, change) };
    } catch (error) {
      if (!(error instanceof NotSavedError)) throw error;
      const reason = (error.cause instanceof Error ? error.cause.message : error.message).split('\n')[0];
      return { record: this.mark(id, change), unsaved: `not saved (${reason})`, error };
    }
  }

  /** A change the journal could not take (a full disk), applied in memory only. */
  mark(id: string, change: TriggerChange): TriggerRecord {
    const event = this.stamp(id, change);
    this.apply(this.checkMove(event).app, event);
    return this.records.get(id)!;
  }

  /** A note on a record's summary, in memory only (why its outcome is not on disk). */
  annotate(id: string, summary: string): TriggerRecord {
    const record = this.records.get(id)!;
    record.summary = summary;
    return record;
  }

  /** After the last write (shutdown); the journals are complete on disk. */
  async close(): Promise<void> {
    for (const log of this.logs.values()) await log.release();
  }

  private stamp(id: string, change: TriggerChange): TriggerEvent {
    return { ...change, id, at: new Date().toISOString() };
  }

  /** Every change of a trigger's state goes through the state machine (deploy-state.ts). */
  private checkMove(event: TriggerEvent): TriggerRecord {
    const current = this.records.get(event.id);
    if (!current) throw new NotSavedError(`the ${event.type} event of trigger ${event.id}`, 'the journal', new Error('no such trigger'));
    const to = stateAfter(event);
    if (to !== undefined) checkTransition(event.id, current.state, to);
    return current;
  }

  /** Applied only once the whole line is on disk: what the file does not hold, no one is told. */
  private async write(app: string, event: TriggerEvent): Promise<void> {
    const log = this.logOf(app);
    try {
      await log.append(event);
    } catch (error) {
      throw new NotSavedError(event.type === 'accepted' ? 'the trigger' : `the state of trigger ${event.id}`, log.path, error);
    }
    this.apply(app, event);
    if (++this.appendedSinceTrim >= Math.ceil(this.keepFinished / 2)) {
      this.appendedSinceTrim = 0;
      this.trim();
    }
  }

  /** Merged into `id`: a delivery that asked for the deploy it already does. */
  async merge(id: string, delivery: Pick<TriggerRequest, 'deliveryId' | 'bodyDigest'>): Promise<void> {
    const { deliveryId, bodyDigest } = delivery;
    await this.write(this.records.get(id)!.app, this.stamp(id, { type: 'merged', deliveryId, ...(bodyDigest && { bodyDigest }) }));
  }

  /**
   * Every line is promised to someone (a 202, a commit status): O_DSYNC, group commit. Made on
   * first use; open() holds them all once it has read them and upgraded.
   */
  private logOf(app: string): EventLog<JournalEvent> {
    let log = this.logs.get(app);
    if (!log) {
      log = new EventLog(this.files.journalOf(app), { everyWriteDurable: true });
      this.logs.set(app, log);
    }
    return log;
  }

  private apply(app: string, event: TriggerEvent): void {
    this.seen.note(app, event);
    const before = this.records.get(event.id);
    if (!canApply(before, event)) return;
    this.records.set(event.id, applyTriggerEvent(before, event)!);
  }

  /**
   * Memory keeps every unfinished trigger and the newest keepFinished finished ones: a duet serve
   * that runs for months must not hold every trigger it ever saw. (The journal's own compaction,
   * at the end of a deploy, keeps its file small.) Done every keepFinished/2 appends, not per one.
   * The deliveries seen are not trimmed with them: they go by age (seen-deliveries.ts).
   */
  private trim(): void {
    const finished = [...this.records.values()].filter((r) => r.finishedAt !== null);
    if (finished.length <= this.keepFinished * 2) return;
    finished.sort((a, b) => a.id.localeCompare(b.id));
    for (const record of finished.slice(0, finished.length - this.keepFinished)) this.records.delete(record.id);
  }

  /**
   * Move the triggers of triggers.ndjson into the journals, once: each as one `accepted` line
   * holding its record as folded (whatever state it reached) and the deliveries merged into it,
   * so a crash part way leaves each trigger either moved whole or not at all; one already in a
   * journal (moved before such a crash) is not moved again. The file goes once all are on disk.
   */
  private async upgrade(path: string): Promise<void> {
    const records = new Map<string, TriggerRecord>();
    const merged = new Map<string, string[]>();
    for (const event of (await new EventLog<LegacyEvent>(path).read()).events) {
      if (event.op === 'accepted') records.set(event.record.id, { ...event.record });
      else if (event.op === 'update') Object.assign(records.get(event.id) ?? {}, event.patch);
      else merged.set(event.id, [...(merged.get(event.id) ?? []), event.deliveryId]);
    }
    for (const record of [...records.values()].sort((a, b) => a.id.localeCompare(b.id))) {
      if (this.records.has(record.id)) continue;
      await this.write(record.app, { type: 'accepted', id: record.id, at: record.receivedAt, trigger: record, deliveries: merged.get(record.id) ?? [] });
    }
    await unlink(path);
  }
}

/**
 * Where the triggers are: each configured app's journal, and the journal left in the state dir
 * by an app since removed from the config, so that its unfinished triggers are found and closed
 * (errored, and GitHub told) instead of staying "pending" for ever; and the legacy triggers.ndjson.
 */
export async function triggerStoreFiles(config: Config): Promise<TriggerStoreFiles> {
  const journalOf = (app: string): string => appPaths(config.stateDir, app).journal;
  const apps = new Set(config.apps.keys());
  for (const entry of await readdir(config.stateDir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory() && existsSync(journalOf(entry.name))) apps.add(entry.name);
  }
  return { apps: [...apps], journalOf, legacy: join(config.stateDir, 'triggers.ndjson') };
}
