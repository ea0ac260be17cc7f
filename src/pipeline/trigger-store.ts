import { NotSavedError } from '../errors.js';
import { EventLog } from '../util/event-log.js';
import { checkTransition } from './deploy-state.js';
import type { TriggerRecord } from './trigger.js';

/**
 * Every accepted trigger and each change of its state, as fsync'd lines in
 * `<state_dir>/triggers.ndjson`. A trigger is acknowledged (202) only after its line is on disk,
 * so a crash right after the answer loses nothing; on start the file is folded back into records
 * and unfinished ones are resumed.
 */
type StoreEvent =
  | { op: 'accepted'; record: TriggerRecord }
  | { op: 'update'; id: string; patch: Partial<TriggerRecord> }
  /** A delivery that was merged into an existing trigger: its id must still count as seen. */
  | { op: 'alias'; deliveryId: string; id: string };

export interface TriggerStoreOptions {
  /** Finished triggers kept by a compaction: enough for the dashboard and redeliveries. */
  keepFinished?: number;
  /** A compaction while running failed (the file stays as it was, appends go on). */
  onCompactFailed?: (error: unknown) => void;
}

export class TriggerStore {
  private readonly records = new Map<string, TriggerRecord>();
  private readonly deliveries = new Map<string, string>();
  private readonly log: EventLog<StoreEvent>;
  private readonly keepFinished: number;
  private appendedSinceCheck = 0;
  /** Appends in flight, each until its line is on disk and applied: a compaction waits for them. */
  private readonly writing = new Set<Promise<void>>();
  /** A compaction under way: appends wait for it, so none lands in the file being replaced. */
  private compacting: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly options: TriggerStoreOptions = {},
  ) {
    this.log = new EventLog(path, { everyWriteDurable: true });
    this.keepFinished = options.keepFinished ?? 500;
  }

  async open(): Promise<void> {
    // A line torn by a crash mid-append is skipped: its trigger was never acknowledged.
    for (const event of (await this.log.read()).events) this.apply(event);
    // duet serve is the file's only writer: one handle for its life.
    await this.log.hold();
    // A full disk at start must not keep duet serve from starting: the file works uncompacted.
    await this.compact().catch((error: unknown) => this.options.onCompactFailed?.(error));
  }

  all(): TriggerRecord[] {
    return [...this.records.values()];
  }

  get(id: string): TriggerRecord | undefined {
    return this.records.get(id);
  }

  /** The trigger accepted from this very signed body, under whatever delivery id. */
  byBody(digest: string): TriggerRecord | undefined {
    return this.byDelivery(bodyKey(digest));
  }

  byDelivery(deliveryId: string): TriggerRecord | undefined {
    const id = this.deliveries.get(deliveryId);
    return id === undefined ? undefined : this.records.get(id);
  }

  async accept(record: TriggerRecord): Promise<void> {
    await this.write({ op: 'accepted', record });
  }

  async update(id: string, patch: Partial<TriggerRecord>): Promise<TriggerRecord> {
    this.checkMove(id, patch);
    await this.write({ op: 'update', id, patch });
    return this.records.get(id)!;
  }

  async alias(deliveryId: string, id: string): Promise<void> {
    await this.write({ op: 'alias', deliveryId, id });
  }

  /**
   * update(), and when the file cannot take it (a full disk), the change applied in memory
   * anyway, marked with why (`unsaved`): a deploy that ran did run, and the dashboard, the API
   * and the commit status should say so while the file lags. What it lags on, the next start of
   * duet serve re-runs (a deploy converges) from the state the file does have.
   */
  async updateOrMark(id: string, patch: Partial<TriggerRecord>): Promise<{ record: TriggerRecord; unsaved?: string; error?: NotSavedError }> {
    try {
      return { record: await this.update(id, patch) };
    } catch (error) {
      if (!(error instanceof NotSavedError)) throw error;
      const reason = (error.cause instanceof Error ? error.cause.message : error.message).split('\n')[0];
      return { record: this.mark(id, patch), unsaved: `not saved (${reason})`, error };
    }
  }

  /**
   * A change the file could not take (a full disk), applied in memory only, so that what duet
   * shows matches what happened; the next compaction that succeeds writes it down.
   */
  mark(id: string, patch: Partial<TriggerRecord>): TriggerRecord {
    this.checkMove(id, patch);
    this.apply({ op: 'update', id, patch });
    return this.records.get(id)!;
  }

  /** Every change of a trigger's state goes through the state machine (deploy-state.ts). */
  private checkMove(id: string, patch: Partial<TriggerRecord>): void {
    const current = this.records.get(id);
    if (patch.state !== undefined && current) checkTransition(id, current.state, patch.state);
  }

  private async write(event: StoreEvent): Promise<void> {
    while (this.compacting) await this.compacting;
    const writing = this.appendAndApply(event);
    this.writing.add(writing);
    try {
      await writing;
    } finally {
      this.writing.delete(writing);
    }
    // Counting finished triggers walks them all: done every keepFinished/2 lines, not per line.
    if (++this.appendedSinceCheck >= Math.ceil(this.keepFinished / 2)) {
      this.appendedSinceCheck = 0;
      // An append that was in flight when a compaction began ends here while it still runs.
      if (!this.compacting && this.dueForCompaction()) this.compactInBackground();
    }
  }

  /** Applied only once the whole line is on disk: what the file does not hold, no one is told. */
  private async appendAndApply(event: StoreEvent): Promise<void> {
    try {
      await this.log.append(event);
    } catch (error) {
      throw new NotSavedError(event.op === 'update' ? `the state of trigger ${event.id}` : 'the trigger', this.path, error);
    }
    this.apply(event);
  }

  /** After the last write (shutdown); the file is complete on disk. */
  async close(): Promise<void> {
    while (this.compacting) await this.compacting;
    await this.log.release();
  }

  /**
   * While running, not only at start: a duet serve that runs for months took every trigger it
   * ever saw into memory and into a file it read whole at the next start. Not awaited by the
   * append that found it due: its caller (a webhook's 202) does not wait for a rewrite.
   */
  private compactInBackground(): void {
    const inFlight = [...this.writing];
    this.compacting = (async () => {
      await Promise.allSettled(inFlight);
      await this.compact();
    })()
      .catch((error: unknown) => this.options.onCompactFailed?.(error))
      .finally(() => {
        this.compacting = undefined;
      });
  }

  private dueForCompaction(): boolean {
    let finished = 0;
    for (const record of this.records.values()) if (record.finishedAt !== null) finished += 1;
    return finished > this.keepFinished * 2;
  }

  private apply(event: StoreEvent): void {
    if (event.op === 'accepted') {
      this.records.set(event.record.id, { ...event.record });
      if (event.record.deliveryId) this.deliveries.set(event.record.deliveryId, event.record.id);
      if (event.record.bodyDigest) this.deliveries.set(bodyKey(event.record.bodyDigest), event.record.id);
    } else if (event.op === 'update') {
      const record = this.records.get(event.id);
      if (record) Object.assign(record, event.patch);
    } else {
      this.deliveries.set(event.deliveryId, event.id);
    }
  }

  /**
   * Rewrite the file with what is still worth knowing (atomically: temp, fsync, rename), from
   * memory, which holds exactly what the file does once no append is in flight. Memory is only
   * trimmed once the new file is in place: a failed rewrite loses nothing.
   */
  private async compact(): Promise<void> {
    const all = [...this.records.values()].sort((a, b) => a.id.localeCompare(b.id));
    const finished = all.filter((r) => r.finishedAt !== null);
    if (finished.length <= this.keepFinished * 2) return;
    const drop = new Set(finished.slice(0, finished.length - this.keepFinished).map((r) => r.id));
    const kept = all.filter((r) => !drop.has(r.id));
    const events: StoreEvent[] = kept.map((record) => ({ op: 'accepted', record }));
    for (const [deliveryId, id] of this.deliveries) {
      if (!drop.has(id) && this.records.get(id)?.deliveryId !== deliveryId) events.push({ op: 'alias', deliveryId, id });
    }
    await this.log.rewrite(events);
    for (const id of drop) this.records.delete(id);
    for (const [deliveryId, id] of this.deliveries) if (drop.has(id)) this.deliveries.delete(deliveryId);
  }
}

/** Body digests share the deliveries index; the prefix keeps them apart from GitHub's GUIDs. */
function bodyKey(digest: string): string {
  return `body:${digest}`;
}
