/** A sleeper's alarm: `next()` resolves at the next `wake()`, at once when one came since the last `next()`. */
export class Wakeup {
  private pending = false;
  private sleeper: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    this.sleeper?.();
  }

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.sleeper = () => {
        this.pending = false;
        this.sleeper = undefined;
        resolve();
      };
      if (this.pending) this.sleeper();
    });
  }
}
