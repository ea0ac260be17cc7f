import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { NotifyTarget } from '../config/notify.js';
import { Pacer } from '../github/pacer.js';
import type { Failover } from '../github/reports.js';
import type { Deploy } from '../pipeline/deploy-state.js';
import type { TriggerObserver } from '../pipeline/trigger.js';
import { EventLog } from '../util/event-log.js';
import { idleLane, OutboxDelivery, type Lane as DeliveryLane, type Tried } from '../util/outbox-delivery.js';
import { OutboxWriter } from '../util/outbox-writer.js';
import { failoverEvent, triggerEvent, triggerOutcome, wants, type NotifyEvent } from './messages.js';
import { readTargetSecrets, sendNotification, type TargetSecrets } from './send.js';

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

interface Lane extends DeliveryLane<Entry> {
  target: NotifyTarget;
  secrets: TargetSecrets;
  pacer: Pacer;
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
  private readonly log: EventLog<NotifyRecord>;
  private readonly delivery: OutboxDelivery<NotifyRecord, Entry, Lane>;

  private constructor(
    private readonly config: Config,
    lanes: Map<string, Lane>,
    options: NotifierOptions,
  ) {
    this.logger = options.logger.child({ component: 'notify' });
    this.log = new EventLog(options.outboxPath, { parse: parseRecord });
    const outbox = new OutboxWriter(this.log, this.logger, 'notify outbox');
    this.delivery = new OutboxDelivery(lanes, outbox, this.logger, options.retryBaseMs ?? 1000, {
      name: 'notify',
      items: 'messages',
      tryFirst: (lane, attempt) => this.tryFirst(lane, attempt),
      doneRecord: (entry) => ({ op: 'done', id: entry.id }),
      // Once nothing waits, the outbox holds nothing a restart needs: it is emptied.
      compacted: () => [],
      describe: (lane) => ({ format: lane.target.format }),
    });
  }

  /** Reads every target's URL and secret now: a file duet cannot use stops duet serve at its start, not a message later. */
  static async open(options: NotifierOptions): Promise<Notifier> {
    const lanes = new Map<string, Lane>();
    for (const [index, target] of options.config.notify.entries()) {
      const secrets = await readTargetSecrets(target, index);
      lanes.set(targetKey(target), { target, secrets, pacer: new Pacer(MESSAGES_PER_MINUTE), ...idleLane<Entry>() });
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
  resume(): Promise<void> {
    const lanes = this.delivery.lanes;
    return this.delivery.resume(async () => {
      const { events, skipped } = await this.log.read();
      if (skipped > 0) this.logger.warn({ outbox: this.log.path, skipped }, 'notify outbox: skipped unreadable lines');
      const done = new Set(events.filter((record) => record.op === 'done').map((record) => record.id));
      const known = new Set([...lanes.values()].flatMap((lane) => lane.entries.map((entry) => entry.id)));
      let replayed = 0;
      for (const record of events) {
        if (record.op !== 'enqueue' || done.has(record.id) || known.has(record.id)) continue;
        const lane = lanes.get(record.target);
        if (!lane) {
          this.logger.warn({ target: record.target, deploy: record.event.deployId }, 'notify: a message for a target no longer configured is dropped');
          continue;
        }
        this.delivery.push(lane, { seq: this.delivery.nextSeq(), id: record.id, queuedAt: Date.parse(record.queuedAt), event: record.event });
        replayed += 1;
      }
      if (replayed > 0) this.logger.info({ replayed }, 'notify: sending messages left undelivered before the restart');
    });
  }

  /** Resolves when every message queued so far was delivered or given up on, or after timeoutMs. */
  flush(timeoutMs?: number): Promise<void> {
    return this.delivery.flush(timeoutMs);
  }

  /** Stops sending; what is undelivered stays in the outbox for the next process. */
  close(): Promise<void> {
    for (const lane of this.delivery.lanes.values()) lane.pacer.close();
    return this.delivery.close();
  }

  private enqueue(event: NotifyEvent): void {
    if (this.delivery.closed) return;
    for (const [key, lane] of this.delivery.lanes) {
      if (!wants(lane.target, event)) continue;
      const entry: Entry = { seq: this.delivery.nextSeq(), id: `msg_${randomUUID()}`, queuedAt: Date.now(), event };
      this.delivery.write({ op: 'enqueue', id: entry.id, target: key, queuedAt: new Date(entry.queuedAt).toISOString(), event });
      this.delivery.push(lane, entry);
    }
  }

  private async tryFirst(lane: Lane, attempt: number): Promise<Tried> {
    const entry = lane.entries[0]!;
    const outcome = await lane.pacer.turn(() => sendNotification(lane.target, lane.secrets, entry.id, entry.event));
    if (!outcome) return undefined; // closed while waiting: the outbox keeps it
    const fields = { format: lane.target.format, app: entry.event.app, deploy: entry.event.deployId, outcome: entry.event.outcome, attempt: attempt + 1 };
    if ('retry' in outcome) {
      if (Date.now() - entry.queuedAt < GIVE_UP_MS) {
        this.logger.warn({ ...fields, why: outcome.retry }, `notify: not delivered (${outcome.retry}); retrying`);
        return { retry: outcome.waitMs };
      }
      this.logger.error({ ...fields, why: outcome.retry }, `notify: giving up after 24 h of failed attempts (${outcome.retry})`);
    } else if ('dropped' in outcome) {
      this.logger.error({ ...fields, why: outcome.dropped }, `notify: refused by the receiver (${outcome.dropped}); not retrying`);
    } else {
      this.logger.info(fields, 'notify: delivered');
    }
    return 'settled';
  }
}
