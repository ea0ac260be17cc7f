import type { Logger } from 'pino';
import type { OutboxWriter } from './outbox-writer.js';
import { Settlements } from './settlements.js';

/** The longest backoff between two tries of one delivery. */
const MAX_BACKOFF_MS = 5 * 60_000;
/** A receiver's Retry-After (or a rate limit's reset) is honoured up to this. */
const MAX_WAIT_MS = 60 * 60_000;

/**
 * Entries delivered one at a time, in the order queued, each tried until it is settled (the
 * reports of one GitHub key, the messages to one notify target), and the retry wait the lane is
 * in, so that closing can end it early.
 */
export interface Lane<E> {
  entries: E[];
  draining: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  wake: (() => void) | undefined;
}

export const idleLane = <E>(): Lane<E> => ({ entries: [], draining: undefined, timer: undefined, wake: undefined });

/**
 * One try of a lane's first entry: settled (delivered, or given up on), to be tried again (after
 * at least `retry` ms when the receiver asked for a wait), or undefined when closing came first.
 */
export type Tried = 'settled' | { retry: number | undefined } | undefined;

/** What one outbox's delivery knows of its own entries and receivers. */
interface Courier<R, E, L> {
  /** Log lines start with it: "github". */
  name: string;
  /** What it delivers, in log lines: "reports". */
  items: string;
  /** Tries the lane's first entry once, in its pacer's turn; `attempt` counts the failed tries before. */
  tryFirst(lane: L, attempt: number): Promise<Tried>;
  /** The outbox record saying an entry is settled. */
  doneRecord(entry: E): R;
  /** What the outbox is rewritten to once nothing waits: what a restart still needs. */
  compacted(): R[];
  /** Names a lane in the log line of a delivery loop that failed. */
  describe(lane: L): Record<string, unknown>;
  /** The lane's loop stopped: drained, closed, or failed. */
  stopped?(lane: L): void;
}

/**
 * The delivery side of an outbox (the GitHub reporter's, the notifier's): its owner writes each
 * entry to the outbox file, then pushes it onto a lane; each lane delivers in the background with
 * backoff, what is settled is recorded done, and once nothing waits the file is compacted. It
 * never throws at its callers: a failed loop is logged, and the outbox keeps what it held.
 */
export class OutboxDelivery<R, E extends { seq: number }, L extends Lane<E>> {
  private readonly settlements = new Settlements();
  private seq = 0;
  /** Something was written since the last compaction. */
  private dirty = false;
  private stopping = false;
  /** Until resume() has read the file, it holds entries from before a restart: never compact it. */
  private resumed = false;

  constructor(
    readonly lanes: Map<string, L>,
    private readonly outbox: OutboxWriter<R>,
    private readonly logger: Logger,
    /** First retry delay; doubles per failure up to MAX_BACKOFF_MS. */
    private readonly retryBaseMs: number,
    private readonly courier: Courier<R, E, L>,
  ) {}

  get closed(): boolean {
    return this.stopping;
  }

  /** The number of the next entry, in the order queued. */
  nextSeq(): number {
    return ++this.seq;
  }

  write(record: R): void {
    this.dirty = true;
    this.outbox.append(record);
  }

  push(lane: L, entry: E): void {
    lane.entries.push(entry);
    this.settlements.add(entry.seq);
    if (!lane.draining && !this.stopping) lane.draining = this.drain(lane);
  }

  /** An entry taken off its lane: recorded done, no longer waited for. */
  settle(entry: E): void {
    this.write(this.courier.doneRecord(entry));
    this.settlements.settle(entry.seq);
  }

  /**
   * `replay` queues what the outbox holds from before a restart. What this process wrote is in
   * the file first, so that replay can tell its own entries from the older ones.
   */
  async resume(replay: () => Promise<void>): Promise<void> {
    await this.outbox.idle();
    await replay();
    this.resumed = true;
    this.dirty = true;
    this.maybeCompact();
  }

  /** Resolves when every entry queued so far was delivered or given up on, or after timeoutMs. */
  async flush(timeoutMs?: number): Promise<void> {
    if (!(await this.settlements.waitFor(this.seq, timeoutMs))) {
      this.logger.warn({ undelivered: this.settlements.size }, `${this.courier.name}: flush timed out; ${this.courier.items} stay in the outbox`);
    }
    await this.outbox.idle();
  }

  /** Stops delivering (close the pacers first); what is undelivered stays in the outbox for resume(). */
  async close(): Promise<void> {
    this.stopping = true;
    for (const lane of this.lanes.values()) {
      clearTimeout(lane.timer);
      lane.wake?.();
    }
    await Promise.all([...this.lanes.values()].map((lane) => lane.draining ?? Promise.resolve()));
    await this.outbox.idle();
    this.settlements.release();
  }

  private async drain(lane: L): Promise<void> {
    let attempt = 0;
    try {
      while (!this.stopping && lane.entries.length > 0) {
        const tried = await this.courier.tryFirst(lane, attempt);
        if (tried === undefined) break; // closed while waiting for its turn: the outbox keeps it
        if (tried !== 'settled') {
          attempt += 1;
          await this.retryWait(lane, attempt, tried.retry);
          continue;
        }
        attempt = 0;
        this.settle(lane.entries.shift()!);
      }
    } catch (error) {
      this.logger.error({ ...this.courier.describe(lane), error: String(error) }, `${this.courier.name}: delivery loop failed`);
    } finally {
      lane.draining = undefined;
      this.courier.stopped?.(lane);
      this.maybeCompact();
    }
  }

  /**
   * The wait before try `attempt + 1`: the backoff doubles from retryBaseMs up to MAX_BACKOFF_MS,
   * a longer wait the receiver asked for is honoured up to MAX_WAIT_MS. Closing ends it.
   */
  private retryWait(lane: L, attempt: number, askedMs: number | undefined): Promise<void> {
    const backoff = Math.min(this.retryBaseMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
    const delay = Math.min(Math.max(backoff, askedMs ?? 0), MAX_WAIT_MS);
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      lane.wake = () => {
        lane.wake = undefined;
        lane.timer = undefined;
        resolve();
      };
      // A pending retry must not be what keeps a process alive: the outbox keeps what it retries.
      lane.timer = setTimeout(lane.wake, delay);
      lane.timer.unref();
    });
  }

  /** Once nothing waits, the outbox is rewritten to what a restart still needs. */
  private maybeCompact(): void {
    const busy = (): boolean => [...this.lanes.values()].some((lane) => lane.entries.length > 0);
    if (!this.resumed || !this.dirty || this.stopping || busy()) return;
    this.outbox.compact(() => {
      if (this.stopping || busy()) return null;
      this.dirty = false;
      return this.courier.compacted();
    });
  }
}
