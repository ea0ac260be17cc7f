/**
 * Which outbox entries, numbered in the order they were queued, are still undelivered, and who
 * waits for all of those up to a number to be delivered or given up on (OutboxDelivery's flush).
 */
export class Settlements {
  private readonly unsettled = new Set<number>();
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

  get size(): number {
    return this.unsettled.size;
  }

  add(seq: number): void {
    this.unsettled.add(seq);
  }

  settle(seq: number): void {
    this.unsettled.delete(seq);
    for (const waiter of [...this.waiters]) if (this.settledUpTo(waiter.upTo)) waiter.resolve();
  }

  /** Resolves true once every entry up to `upTo` is settled (or at release), false after timeoutMs. */
  waitFor(upTo: number, timeoutMs?: number): Promise<boolean> {
    if (this.settledUpTo(upTo)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const waiter = { upTo, resolve: () => {} };
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => done(false), timeoutMs);
      const done = (settled: boolean): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(settled);
      };
      waiter.resolve = () => done(true);
      this.waiters.push(waiter);
    });
  }

  /** Lets every waiter go (shutdown): what is undelivered stays in the outbox. */
  release(): void {
    for (const waiter of this.waiters) waiter.resolve();
  }

  private settledUpTo(upTo: number): boolean {
    for (const seq of this.unsettled) if (seq <= upTo) return false;
    return true;
  }
}
