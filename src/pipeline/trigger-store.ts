import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Config } from '../config/load.js';
import { appPaths } from '../config/paths.js';
import { isDiskFull, NotSavedError } from '../errors.js';
import { DiskReserve } from '../util/disk-reserve.js';
import { appJournal, type AppJournal } from './app-journal.js';
import { checkApply, type Deploy } from './deploy-state.js';
import { SeenDeliveries } from './seen-deliveries.js';
import { isTriggerEvent, type TriggerEvent, type TriggerRequest } from './trigger.js';

/**
 * The queue's view of the apps' journals (app-journal.ts): it writes the trigger events
 * (trigger.ts: accepted, merged, resolved, dequeued, superseded, settled), each checked against
 * the state machine first, finds the triggers among the deploys the journals fold, and indexes
 * the deliveries each app accepted (seen-deliveries.ts): a redelivery or a replayed body is a
 * duplicate for 3 days, whatever else arrived meanwhile. A trigger is acknowledged (202) only
 * after its line is on disk, so a crash right after the answer loses nothing; on start the
 * journals are read and unfinished triggers are resumed (queue.ts).
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
  /** An app's journal (its triggers' events go there too): the one of this process. */
  journalOf: (app: string) => AppJournal;
}

export class TriggerStore {
  private readonly seen = new SeenDeliveries();
  private readonly journals = new Map<string, AppJournal>();
  private readonly unfollow: Array<() => void> = [];
  private readonly reserves = new Map<string, DiskReserve>();
  /** Per app, in order: changes applied in memory that the journal did not take yet. */
  private readonly unsaved = new Map<string, TriggerEvent[]>();
  private retrying: { timer: NodeJS.Timeout; pass: Promise<void> } | undefined;
  private closed = false;

  constructor(private readonly files: TriggerStoreFiles) {}

  async open(): Promise<void> {
    for (const app of this.files.apps) {
      const journal = this.journalOf(app);
      // duet serve appends trigger events for its whole life: one handle per journal.
      journal.hold();
      // A line torn by a crash mid-append is skipped: its trigger was never acknowledged.
      await journal.all();
      await this.reserveOf(app).fill();
    }
  }

  /** Every trigger (a deploy a run from the shell or duet itself made has none). */
  all(): Deploy[] {
    return [...this.journals.values()].flatMap((journal) => journal.peekAll().filter((d) => d.source !== null));
  }

  get(id: string): Deploy | undefined {
    for (const journal of this.journals.values()) {
      const found = journal.peek(id);
      if (found) return found.source === null ? undefined : found;
    }
    return undefined;
  }

  /** The trigger `request` is a delivery of again: the same delivery id, or the same signed body under any. */
  duplicateOf(request: TriggerRequest): { id: string; reason: string } | undefined {
    return this.seen.duplicateOf(request);
  }

  async accept(record: Deploy): Promise<void> {
    await this.write(record.app, { type: 'accepted', id: record.id, at: record.receivedAt ?? new Date().toISOString(), trigger: record });
  }

  /** Record what happened to trigger `id`; the state machine (deploy-state.ts) checks the move. */
  async record(id: string, change: TriggerChange): Promise<Deploy> {
    const event = this.stamp(id, change);
    return this.write(this.checkMove(event).app, event);
  }

  /**
   * record() for the change that ends a trigger (settled): when the journal cannot take it even
   * with the reserve, it is applied in memory anyway, its summary saying so (`error`): a deploy
   * that ran did run, and the dashboard, the API and the commit status say how it ended while
   * the file lags; the line is written as soon as the disk takes it (RETRY_MS, and at close).
   */
  async recordOrMark(id: string, change: TriggerChange): Promise<{ record: Deploy; error?: NotSavedError }> {
    const event = this.stamp(id, change);
    const { app } = this.checkMove(event);
    try {
      return { record: await this.write(app, event) };
    } catch (error) {
      if (!(error instanceof NotSavedError)) throw error;
      // Into the array a retry under way goes through: it takes this one too, in order.
      const waiting = this.unsaved.get(app) ?? [];
      waiting.push(event);
      this.unsaved.set(app, waiting);
      this.retryLater();
      const reason = (error.cause instanceof Error ? error.cause.message : error.message).split('\n')[0];
      const summary = 'summary' in event ? event.summary : event.type;
      const note = `${summary}; not saved yet (${reason}): duet serve writes it as soon as the disk takes it`;
      return { record: this.journalOf(app).applyUnsaved(event, note)!, error };
    }
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
    for (const stop of this.unfollow) stop();
    for (const journal of this.journals.values()) await journal.release();
  }

  private stamp(id: string, change: TriggerChange): TriggerEvent {
    return { ...change, id, at: new Date().toISOString() };
  }

  /** Every change of a trigger goes through the state machine (deploy-state.ts). */
  private checkMove(event: TriggerEvent): Deploy {
    const current = this.get(event.id);
    if (!current) throw new NotSavedError(`the ${event.type} event of trigger ${event.id}`, 'the journal', new Error('no such trigger'));
    checkApply(current, event);
    return current;
  }

  /** Folded only once the whole line is on disk: what the file does not hold, no one is told. */
  private async write(app: string, event: TriggerEvent): Promise<Deploy> {
    let deploy: Deploy | undefined;
    try {
      deploy = await this.append(app, event);
    } catch (error) {
      throw new NotSavedError(event.type === 'accepted' ? 'the trigger' : `the state of trigger ${event.id}`, this.journalOf(app).path, error);
    }
    return deploy!;
  }

  /** Merged into `id`: a delivery that asked for the deploy it already does. */
  async merge(id: string, delivery: Pick<TriggerRequest, 'deliveryId' | 'bodyDigest'>): Promise<void> {
    const { deliveryId, bodyDigest } = delivery;
    await this.write(this.get(id)!.app, this.stamp(id, { type: 'merged', deliveryId, ...(bodyDigest && { bodyDigest }) }));
  }

  /** On a full disk, the line that ends a trigger spends the reserve; no other does (a new trigger waits for room: 503). */
  private async append(app: string, event: TriggerEvent): Promise<Deploy | undefined> {
    const journal = this.journalOf(app);
    try {
      return await journal.append(event);
    } catch (error) {
      if ((event.type !== 'settled' && event.type !== 'superseded') || !isDiskFull(error)) throw error;
      let deploy: Deploy | undefined;
      const spent = await this.reserveOf(app).spend(async () => {
        deploy = await journal.append(event);
      });
      if (!spent) throw error;
      // Taken again in full once the disk has room.
      this.retryLater();
      return deploy;
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
        // The note that it was not saved goes as the journal reads the line.
        waiting.shift();
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
      reserve = new DiskReserve(join(dirname(this.journalOf(app).path), 'journal.reserve'));
      this.reserves.set(app, reserve);
    }
    return reserve;
  }

  private journalOf(app: string): AppJournal {
    let journal = this.journals.get(app);
    if (!journal) {
      journal = this.files.journalOf(app);
      // The deliveries it accepted, read from the file: what this store wrote and what it found at open().
      this.unfollow.push(
        journal.onEvent((event) => {
          if (isTriggerEvent(event)) this.seen.note(app, event);
        }),
      );
      this.journals.set(app, journal);
    }
    return journal;
  }
}

/**
 * Where the triggers are: each configured app's journal, and the journal left in the state dir
 * by an app since removed from the config, so that its unfinished triggers are found and closed
 * (errored, and GitHub told) instead of staying "pending" for ever.
 */
export async function triggerStoreFiles(config: Config): Promise<TriggerStoreFiles> {
  const apps = new Set(config.apps.keys());
  for (const entry of await readdir(config.stateDir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory() && existsSync(appPaths(config.stateDir, entry.name).journal)) apps.add(entry.name);
  }
  return { apps: [...apps], journalOf: (app) => appJournal(config, app) };
}
