import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { NotifyTarget } from '../config/notify.js';
import { Pacer } from '../github/pacer.js';
import type { Failover } from '../github/reports.js';
import { Settlements } from '../github/settlements.js';
import type { Deploy } from '../pipeline/deploy-state.js';
import type { TriggerObserver } from '../pipeline/trigger.js';
import { EventLog } from '../util/event-log.js';
import { OutboxWriter } from '../util/outbox-writer.js';
import { failoverEvent, triggerEvent, triggerOutcome, wants, type NotifyEvent } from './messages.js';
import { readTargetSecrets, sendNotification, type TargetSecrets } from './send.js';
import { retryWait } from '../util/retry-wait.js';

/**
 * The notify outbox (<state_dir>/notify-outbox.ndjson), an EventLog like the GitHub one:
 *
 *   {op:'enqueue', id, target, queuedAt, event}   a message to send to a target (format + url_file)
 *   {op:'done', id}                                 sent, or given up on
 */
type NotifyRecord = { op: 'enqueue'; id: string; target: string; queuedAt: string; event: NotifyEvent } | { op: 'done'; id: string };

/** A receiver down longer than this has missed the message: given up, with a log line. */
const GIVE_UP_MS = 24 * 60 * 60_000;
/** Slack takes about one message a second per webhook, Discord 30 a minute: the lower of the two. */
const MESSAGES_PER_MINUTE = 30;

interface Entry {
  seq: number;
  id: string;
  queuedAt: number;
  event: NotifyEvent;
}

interface Lane {
  target: NotifyTarget;
  secrets: TargetSecrets;
  pacer: Pacer;
  entries: Entry[];
  draining: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  wake: (() => void) | undefined;
}

interface NotifierOptions {
  config: Config;
  logger: Logger;
  outboxPath: string;
  /** First retry delay; doubles per failure up to 5 minutes. */
  retryBaseMs?: number;
}

const targetKey = (target: NotifyTarget): string => `${target.format} ${target.urlFile}`;

function parseRecord(value: unknown): NotifyRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.id !== 'string') return undefined;
  if (record.op === 'done') return record as NotifyRecord;
  const event = record.event as Record<string, unknown> | null | undefined;
  if (record.op === 'enqueue' && typeof record.target === 'string' && typeof record.queuedAt === 'string' && typeof event?.app === 'string') {
    return record as NotifyRecord;
  }
  return undefined;
}

/**
 * Tells each notify target how a deploy ended: one message per outcome. Like the GitHub reporter
 * it never blocks or fails a deploy: the observer methods only enqueue (to the outbox file, then
 * memory), delivery runs in the background with backoff and Retry-After, and what is undelivered
 * at a restart is sent by the next process, until 24 hours after it was queued.
 */
export class Notifier implements TriggerObserver {
  private readonly logger: Logger;
  private readonly retryBaseMs: number;
  private readonly log: EventLog<NotifyRecord>;
  private readonly outbox: OutboxWriter<NotifyRecord>;
  private readonly settlements = new Settlements();
  private seq = 0;
  private dirty = false;
  private closed = false;
  private resumed = false;

  private constructor(
    private readonly config: Config,
    private readonly lanes: Map<string, Lane>,
    options: NotifierOptions,
  ) {
    this.logger = options.logger.child({ component: 'notify' });
    this.retryBaseMs = options.retryBaseMs ?? 1000;
    this.log = new EventLog(options.outboxPath, { parse: parseRecord });
    this.outbox = new OutboxWriter(this.log, this.logger, 'notify outbox');
  }

  /** Reads every target's URL and secret now: a file duet cannot use stops duet serve at its start, not a message later. */
  static async open(options: NotifierOptions): Promise<Notifier> {
    const lanes = new Map<string, Lane>();
    for (const [index, target] of options.config.notify.entries()) {
      const secrets = await readTargetSecrets(target, index);
      const lane = { target, secrets, pacer: new Pacer(MESSAGES_PER_MINUTE), entries: [], draining: undefined, timer: undefined, wake: undefined };
      lanes.set(targetKey(target), lane);
    }
    return new Notifier(options.config, lanes, options);
  }

  finished(trigger: Deploy): void {
    try {
      const outcome = triggerOutcome(trigger);
      if (outcome) this.enqueue(triggerEvent(this.config, trigger, outcome));
    } catch (error) {
      this.logger.error({ trigger: trigger.id, error: String(error) }, 'notify: could not queue a message');
    }
  }

  failedOver(app: { name: string }, failover: Failover, reason: string): void {
    try {
      this.enqueue(failoverEvent(this.config, app.name, failover, reason));
    } catch (error) {
      this.logger.error({ app: app.name, error: String(error) }, 'notify: could not queue the failover message');
    }
  }

  /** Sends what the outbox holds from before a restart. Call once at startup. */
  async resume(): Promise<void> {
    await this.outbox.idle();
    const { events, skipped } = await this.log.read();
    if (skipped > 0) this.logger.warn({ outbox: this.log.path, skipped }, 'notify outbox: skipped unreadable lines');
    const done = new Set(events.filter((record) => record.op === 'done').map((record) => record.id));
    const known = new Set([...this.lanes.values()].flatMap((lane) => lane.entries.map((entry) => entry.id)));
    let replayed = 0;
    for (const record of events) {
      if (record.op !== 'enqueue' || done.has(record.id) || known.has(record.id)) continue;
      const lane = this.lanes.get(record.target);
      if (!lane) {
        this.logger.warn({ target: record.target, deploy: record.event.deployId }, 'notify: a message for a target no longer configured is dropped');
        continue;
      }
      this.push(lane, { seq: ++this.seq, id: record.id, queuedAt: Date.parse(record.queuedAt), event: record.event });
      replayed += 1;
    }
    if (replayed > 0) this.logger.info({ replayed }, 'notify: sending messages left undelivered before the restart');
    this.resumed = true;
    this.dirty = true;
    this.maybeCompact();
  }

  /** Resolves when every message queued so far was delivered or given up on, or after timeoutMs. */
  async flush(timeoutMs?: number): Promise<void> {
    if (!(await this.settlements.waitFor(this.seq, timeoutMs))) {
      this.logger.warn({ undelivered: this.settlements.size }, 'notify: flush timed out; messages stay in the outbox');
    }
    await this.outbox.idle();
  }

  /** Stops sending; what is undelivered stays in the outbox for the next process. */
  async close(): Promise<void> {
    this.closed = true;
    for (const lane of this.lanes.values()) {
      lane.pacer.close();
      clearTimeout(lane.timer);
      lane.wake?.();
    }
    await Promise.all([...this.lanes.values()].map((lane) => lane.draining ?? Promise.resolve()));
    await this.outbox.idle();
    this.settlements.release();
  }

  private enqueue(event: NotifyEvent): void {
    if (this.closed) return;
    for (const [key, lane] of this.lanes) {
      if (!wants(lane.target, event)) continue;
      const entry: Entry = { seq: ++this.seq, id: `msg_${randomUUID()}`, queuedAt: Date.now(), event };
      this.write({ op: 'enqueue', id: entry.id, target: key, queuedAt: new Date(entry.queuedAt).toISOString(), event });
      this.push(lane, entry);
    }
  }

  private push(lane: Lane, entry: Entry): void {
    lane.entries.push(entry);
    this.settlements.add(entry.seq);
    if (!lane.draining && !this.closed) lane.draining = this.drain(lane);
  }

  private async drain(lane: Lane): Promise<void> {
    let attempt = 0;
    try {
      while (!this.closed && lane.entries.length > 0) {
        const entry = lane.entries[0]!;
        const outcome = await lane.pacer.turn(() => sendNotification(lane.target, lane.secrets, entry.id, entry.event));
        if (!outcome) break; // closed while waiting: the outbox keeps it
        const fields = { format: lane.target.format, app: entry.event.app, deploy: entry.event.deployId, outcome: entry.event.outcome, attempt: attempt + 1 };
        if ('retry' in outcome) {
          if (Date.now() - entry.queuedAt < GIVE_UP_MS) {
            this.logger.warn({ ...fields, why: outcome.retry }, `notify: not delivered (${outcome.retry}); retrying`);
            attempt += 1;
            await this.sleep(lane, attempt, outcome.waitMs);
            continue;
          }
          this.logger.error({ ...fields, why: outcome.retry }, `notify: giving up after 24 h of failed attempts (${outcome.retry})`);
        } else if ('dropped' in outcome) {
          this.logger.error({ ...fields, why: outcome.dropped }, `notify: refused by the receiver (${outcome.dropped}); not retrying`);
        } else {
          this.logger.info(fields, 'notify: delivered');
        }
        attempt = 0;
        lane.entries.shift();
        this.write({ op: 'done', id: entry.id });
        this.settlements.settle(entry.seq);
      }
    } catch (error) {
      this.logger.error({ format: lane.target.format, error: String(error) }, 'notify: delivery loop failed');
    } finally {
      lane.draining = undefined;
      this.maybeCompact();
    }
  }

  private sleep(lane: Lane, attempt: number, askedMs: number | undefined): Promise<void> {
    return retryWait(lane, { attempt, baseMs: this.retryBaseMs, askedMs, closed: this.closed });
  }

  private write(record: NotifyRecord): void {
    this.dirty = true;
    this.outbox.append(record);
  }

  /** Once nothing waits, the outbox holds nothing a restart needs: it is emptied. */
  private maybeCompact(): void {
    const busy = (): boolean => [...this.lanes.values()].some((lane) => lane.entries.length > 0);
    if (!this.resumed || !this.dirty || this.closed || busy()) return;
    this.outbox.compact(() => {
      if (this.closed || busy()) return null;
      this.dirty = false;
      return [];
    });
  }
}
