import PQueue from 'p-queue';

/**
 * GitHub's secondary rate limits: requests that create content (every status is one) no more
 * than 80 a minute (`github.writes_per_minute`), one at a time, and a wait GitHub asks for
 * (Retry-After) holds for every request of the token. Bursts of a quarter of the minute's
 * allowance go at once, then one window of PACE_WINDOW_MS at a time.
 */
const PACE_WINDOW_MS = 15_000;
/** A wait GitHub asks for is honoured up to its hourly window. */
const MAX_PAUSE_MS = 60 * 60_000;

export class Pacer {
  private readonly queue: PQueue;
  private closed = false;
  private readonly closing: Promise<undefined>;
  private resolveClosing: () => void = () => {};

  constructor(writesPerMinute: number, windowMs = PACE_WINDOW_MS) {
    const perWindow = Math.max(1, Math.round((writesPerMinute * windowMs) / 60_000));
    this.queue = new PQueue({ concurrency: 1, interval: windowMs, intervalCap: perWindow });
    this.closing = new Promise((resolve) => {
      this.resolveClosing = () => resolve(undefined);
    });
  }

  /** Runs `request` when its turn comes; undefined when closed first (the turn is given up). */
  async turn<T>(request: () => Promise<T>): Promise<T | undefined> {
    if (this.closed) return undefined;
    return Promise.race([this.queue.add(async () => (this.closed ? undefined : request())), this.closing]);
  }

  /** GitHub asked to wait: no request of this token goes out until then. */
  pause(waitMs: number): void {
    if (waitMs <= 0 || this.queue.isPaused || this.closed) return;
    this.queue.pause();
    setTimeout(() => this.queue.start(), Math.min(waitMs, MAX_PAUSE_MS)).unref();
  }

  /** Turns not yet taken are given up: a paced window must not hold up a shutdown. */
  close(): void {
    this.closed = true;
    this.resolveClosing();
    this.queue.clear();
  }
}
