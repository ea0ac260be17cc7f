import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Config } from '../config/load.js';
import { appPaths } from '../config/paths.js';
import { isDiskFull, NotSavedError } from '../errors.js';
import { DiskReserve } from '../util/disk-reserve.js';
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
 *
 * The line that ends a trigger (settled, superseded) is what the next duet serve decides by
 * whether to run it again, so a full disk must not keep it off: it may spend the reserve kept
 * beside its journal (disk-reserve.ts), and one that still cannot be written (a read-only disk,
 * the reserve spent) is tried again every RETRY_MS and at close, until it is.
 */

/** How often the lines a full or read-only disk refused are tried again. */
const RETRY_MS = 2_000;

/** A trigger event as a caller gives it: the store stamps the id and the time. */
export type TriggerChange = TriggerEvent extends infer E ? (E extends TriggerEvent ? Omit<E, 'id' | 'at'> : never) : never;

export interface TriggerStoreFiles {
  /** The apps whose journals hold triggers to read: the configured ones, and any left in the state dir. */
  apps: readonly string[];
  /** Where an app's journal is (its triggers' events go there too). */
  journalOf: (app: string) => string;
}

interface TriggerStoreOptions {
  /** Finished triggers kept in memory: enough for the dashboard (the dedupe of deliveries keeps its own). */
  keepFinished?: number;
}

export class TriggerStore {
  private readonly records = new Map<string, TriggerRecord>();
  private readonly seen = new SeenDeliveries();
  private readonly logs = new Map<string, EventLog<JournalEvent>>();
  private readonly reserves = new Map<string, DiskReserve>();
  /** Per app, in order: changes applied in memory that the journal did not take yet. */
  private readonly unsaved = new Map<string, TriggerEvent[]>();
  private retrying: { timer: NodeJS.Timeout; pass: Promise<void> } | undefined;
  private closed = false;
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
    this.trim();
    // duet serve is the only writer of trigger events: one handle per journal for its life.
    for (const log of this.logs.values()) await log.hold();
    for (const app of this.files.apps) await this.reserveOf(app).fill();
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
    return this.write(current.app, event);
  }

  /**
   * record() for the change that ends a trigger (settled): when the journal cannot take it even
   * with the reserve, it is applied in memory anyway, its summary saying so (`error`): a deploy
   * that ran did run, and the dashboard, the API and the commit status say how it ended while
   * the file lags; the line is written as soon as the disk takes it (RETRY_MS, and at close).
   */
  async recordOrMark(id: string, change: TriggerChange): Promise<{ record: TriggerRecord; error?: NotSavedError }> {
    const event = this.stamp(id, change);
    const { app } = this.checkMove(event);
    let record: TriggerRecord;
    try {
      record = await this.write(app, event);
    } catch (error) {
      if (!(error instanceof NotSavedError)) throw error;
      this.apply(app, event);
      // Into the array a retry under way goes through: it takes this one too, in order.
      const waiting = this.unsaved.get(app) ?? [];
      waiting.push(event);
      this.unsaved.set(app, waiting);
      this.retryLater();
      const reason = (error.cause instanceof Error ? error.cause.message : error.message).split('\n')[0];
      record = this.records.get(id)!;
      record.summary = `${record.summary ?? record.state}; not saved yet (${reason}): duet serve writes it as soon as the disk takes it`;
      return { record, error };
    }
    return { record };
  }

  /** After the last write (shutdown): what waits is tried once more, then the journals are closed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retrying) {
      clearInterval(this.retrying.timer);
      await this.retrying.pass;
      this.retrying = undefined;
    }
    await this.retry();
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

  /**
   * Applied only once the whole line is on disk: what the file does not hold, no one is told.
   * The record as it then is, even when the trim that may follow drops it from memory.
   */
  private async write(app: string, event: TriggerEvent): Promise<TriggerRecord> {
    try {
      await this.append(app, event);
    } catch (error) {
      throw new NotSavedError(event.type === 'accepted' ? 'the trigger' : `the state of trigger ${event.id}`, this.logOf(app).path, error);
    }
    this.apply(app, event);
    const record = this.records.get(event.id)!;
    if (++this.appendedSinceTrim >= Math.ceil(this.keepFinished / 2)) {
      this.appendedSinceTrim = 0;
      this.trim();
    }
    return record;
  }

  /** Merged into `id`: a delivery that asked for the deploy it already does. */
  async merge(id: string, delivery: Pick<TriggerRequest, 'deliveryId' | 'bodyDigest'>): Promise<void> {
    const { deliveryId, bodyDigest } = delivery;
    await this.write(this.records.get(id)!.app, this.stamp(id, { type: 'merged', deliveryId, ...(bodyDigest && { bodyDigest }) }));
  }

  /** On a full disk, the line that ends a trigger spends the reserve; no other does (a new trigger waits for room: 503). */
  private async append(app: string, event: TriggerEvent): Promise<void> {
    const log = this.logOf(app);
    try {
      await log.append(event);
    } catch (error) {
      if ((event.type !== 'settled' && event.type !== 'superseded') || !isDiskFull(error)) throw error;
      const spent = await this.reserveOf(app).spend(() => log.append(event));
      if (!spent) throw error;
      // Taken again in full once the disk has room.
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.retrying || this.closed) return;
    const timer = setInterval(() => {
      if (this.retrying) this.retrying.pass = this.retrying.pass.then(() => this.retry());
    }, RETRY_MS);
    timer.unref();
    this.retrying = { timer, pass: Promise.resolve() };
  }

  /**
   * The lines the journals did not take, in order (a line fails: the rest of its app's wait), and
   * the reserves spent made whole; the retries stop once nothing is left to do.
   */
  private async retry(): Promise<void> {
    for (const [app, waiting] of this.unsaved) {
      while (waiting.length > 0) {
        const event = waiting[0]!;
        try {
          await this.append(app, event);
        } catch {
          break;
        }
        waiting.shift();
        // The note that it was not saved goes: it is now.
        const record = this.records.get(event.id);
        if (record && (event.type === 'settled' || event.type === 'superseded')) record.summary = event.summary;
      }
      if (waiting.length === 0) this.unsaved.delete(app);
    }
    for (const reserve of this.reserves.values()) if (!reserve.isWhole) await reserve.fill();
    if (this.retrying && this.unsaved.size === 0 && [...this.reserves.values()].every((r) => r.isWhole)) {
      clearInterval(this.retrying.timer);
      this.retrying = undefined;
    }
  }

  /** The room kept on the disk of `app`'s journal, next to it, for the lines that end a trigger. */
  private reserveOf(app: string): DiskReserve {
    let reserve = this.reserves.get(app);
    if (!reserve) {
      reserve = new DiskReserve(join(dirname(this.files.journalOf(app)), 'journal.reserve'));
      this.reserves.set(app, reserve);
    }
    return reserve;
  }

  /**
   * Every line is promised to someone (a 202, a commit status): O_DSYNC, group commit. Made on
   * first use; open() holds them all once it has read them.
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
}

/**
 * Where the triggers are: each configured app's journal, and the journal left in the state dir
 * by an app since removed from the config, so that its unfinished triggers are found and closed
 * (errored, and GitHub told) instead of staying "pending" for ever.
 */
export async function triggerStoreFiles(config: Config): Promise<TriggerStoreFiles> {
  const journalOf = (app: string): string => appPaths(config.stateDir, app).journal;
  const apps = new Set(config.apps.keys());
  for (const entry of await readdir(config.stateDir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory() && existsSync(journalOf(entry.name))) apps.add(entry.name);
  }
  return { apps: [...apps], journalOf };
}
