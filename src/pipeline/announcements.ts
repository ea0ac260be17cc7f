import type { Logger } from 'pino';
import type { Deploy } from './deploy-state.js';
import type { TriggerObserver } from './trigger.js';

/**
 * What the queue tells its observers (the GitHub reporter, the metrics) about each trigger, in
 * order: a trigger's "started" and "finished" wait for its "queued", which may itself wait for
 * the commit to be found. An observer that throws is logged, never allowed to break the queue.
 */
export class Announcements {
  /** Each trigger's "queued" announcement still on its way. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    private readonly observers: TriggerObserver[],
    private readonly logger?: Logger,
  ) {}

  add(observer: TriggerObserver): void {
    this.observers.push(observer);
  }

  /** "queued", once `ready` gives the record to announce. */
  queued(id: string, ready: Promise<Deploy>): void {
    this.pending.set(
      id,
      ready.then((record) => this.notify((o) => o.queued?.({ ...record }))),
    );
  }

  /** It waits for CI: `progress` says how far CI is. */
  async waiting(record: Deploy, progress: string): Promise<void> {
    await this.pending.get(record.id);
    this.notify((o) => o.waiting?.({ ...record }, progress));
  }

  async started(record: Deploy): Promise<void> {
    await this.afterQueued(record.id);
    this.notify((o) => o.started?.({ ...record }, record.color));
  }

  async finished(record: Deploy): Promise<void> {
    await this.afterQueued(record.id);
    this.notify((o) => o.finished?.({ ...record }));
  }

  private async afterQueued(id: string): Promise<void> {
    await this.pending.get(id);
    this.pending.delete(id);
  }

  private notify(tell: (observer: TriggerObserver) => void): void {
    for (const observer of this.observers) {
      try {
        tell(observer);
      } catch (error) {
        this.logger?.error({ err: (error as Error).message }, 'trigger observer failed');
      }
    }
  }
}
