import type { Logger } from 'pino';
import type { EventLog } from './event-log.js';

/**
 * The writer of an outbox (an EventLog of what is still to be sent: the GitHub reports, the
 * notifications). Serialises every write to the file: appends land in the order they were asked
 * for, and a compaction never interleaves with an append. A failed write is logged and does not
 * stop delivery; what it recorded then just would not survive a restart.
 */
export class OutboxWriter<R> {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly log: EventLog<R>,
    private readonly logger: Logger,
    /** Names the outbox in log lines: "github outbox". */
    private readonly name: string,
  ) {}

  append(record: R): void {
    this.run('append', () => this.log.append(record));
  }

  /** `build` runs when the compaction's turn comes, so it sees the state of that moment; null skips. */
  compact(build: () => R[] | null): void {
    this.run('compact', async () => {
      const records = build();
      if (records !== null) await this.log.rewrite(records);
    });
  }

  /** Resolves once every write asked for so far has finished. */
  idle(): Promise<void> {
    return this.chain;
  }

  private run(what: string, operation: () => Promise<void>): void {
    this.chain = this.chain.then(operation).catch((error: unknown) => {
      this.logger.error(
        { outbox: this.log.path, error: error instanceof Error ? error.message : String(error) },
        `${this.name}: ${what} failed; still sending, but what is undelivered would not survive a restart`,
      );
    });
  }
}
