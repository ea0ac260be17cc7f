/**
 * A sleeper's alarm: `next()` resolves at the next `wake()`, at once when one came since the last
 * `next()` ended, or when its timeout or signal ends the sleep. A sleep that ends without a wake
 * leaves nobody listening: a wake that comes while the sleeper is busy waits for its next sleep
 * (a leftover listener would have taken it, and the next sleep would have lasted its whole timeout).
 */
export class Wakeup {
  private pending = false;
  private sleeper: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    this.sleeper?.();
  }

  next(timeoutMs = Number.POSITIVE_INFINITY, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const end = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', end);
        if (this.sleeper === woken) this.sleeper = undefined;
        resolve();
      };
      const woken = (): void => {
        this.pending = false;
        end();
      };
      if (this.pending || signal?.aborted) return woken();
      this.sleeper = woken;
      if (Number.isFinite(timeoutMs)) timer = setTimeout(end, timeoutMs);
      signal?.addEventListener('abort', end, { once: true });
    });
  }
}
