import type { Logger } from 'pino';

/**
 * The log lines of rejected webhook deliveries. Anybody can POST to /webhook, so a line per
 * rejection would let a flood write to the journal as fast as it sends, and cost duet serve a
 * write per request (a tenth of its time in a CPU profile of 120 forged bodies at once). The
 * first `perWindow` rejections of a window get a line each, as a misconfigured webhook's few
 * deliveries do; the rest are counted by outcome and summed up in one line when the window ends.
 * The metrics count every one.
 */
export class RejectionLog {
  private logged = 0;
  private readonly unlogged = new Map<string, number>();
  private windowEnds: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly perWindow = 10,
    private readonly windowMs = 10_000,
  ) {}

  warn(line: { outcome: string } & Record<string, unknown>, message: string): void {
    this.windowEnds ??= setTimeout(() => this.endWindow(), this.windowMs).unref();
    if (this.logged < this.perWindow) {
      this.logged++;
      this.logger.warn(line, message);
      return;
    }
    this.unlogged.set(line.outcome, (this.unlogged.get(line.outcome) ?? 0) + 1);
  }

  private endWindow(): void {
    this.windowEnds = undefined;
    this.logged = 0;
    if (this.unlogged.size === 0) return;
    const outcomes = Object.fromEntries(this.unlogged);
    const count = [...this.unlogged.values()].reduce((sum, n) => sum + n, 0);
    this.unlogged.clear();
    this.logger.warn(
      { outcomes, count, windowS: this.windowMs / 1000 },
      `${count} more webhook deliveries rejected in ${this.windowMs / 1000} s, not logged one by one`,
    );
  }
}
