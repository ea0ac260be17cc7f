import { open, stat, truncate } from 'node:fs/promises';

/** Room for some hundred lines of a few hundred bytes, in pages or blocks of 4 KiB. */
const RESERVE_BYTES = 64 * 1024;

/**
 * Room kept on a file system for the few writes that must land on it when it is full: a file of
 * RESERVE_BYTES next to what they write to. `spend` gives its room back for one write and takes
 * again, right after, what that write left, so the disk stays full for every other writer (what
 * may wait for room still waits) and the rest serves the next such write. Best effort: another
 * process may take the room in the moment between; the write then fails as it would have.
 */
export class DiskReserve {
  private whole = false;
  /** One spend at a time: a second one would find the room given back by the first, and take it. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  /** Whether it holds RESERVE_BYTES: fill() once the disk has room again when not. */
  get isWhole(): boolean {
    return this.whole;
  }

  /** Takes up to RESERVE_BYTES, as much as the disk has; never throws. */
  async fill(): Promise<void> {
    let handle;
    try {
      handle = await open(this.path, 'a', 0o600);
      let size = (await handle.stat()).size;
      const chunk = Buffer.alloc(4096);
      while (size < RESERVE_BYTES) size += (await handle.write(chunk, 0, Math.min(chunk.length, RESERVE_BYTES - size))).bytesWritten;
      this.whole = true;
    } catch {
      // ENOSPC (what there was is kept), or a disk that is not writable at all.
      this.whole = false;
    } finally {
      await handle?.close().catch(() => {});
    }
  }

  /** `write` with the reserve's room given back to the file system; false: there was none to give. */
  async spend(write: () => Promise<void>): Promise<boolean> {
    const spent = this.turn.then(async () => {
      const size = await stat(this.path).then(
        (s) => s.size,
        () => 0,
      );
      if (size === 0) return false;
      await truncate(this.path, 0);
      this.whole = false;
      try {
        await write();
      } finally {
        await this.fill();
      }
      return true;
    });
    this.turn = spent.catch(() => {});
    return spent;
  }
}
