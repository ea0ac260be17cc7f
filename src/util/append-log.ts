import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

interface Waiting {
  line: string;
  fsync: boolean;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * An append-only file of lines where `append` resolves once the line is on disk (fsync'd; with
 * `fsync: false`, once it is written), and lines appended while a flush is under way share the
 * next write and fsync (group commit). One
 * open handle for the life of the log, instead of open/stat/read/write/fsync/close per line: a
 * burst of webhook deliveries costs a few fsyncs, not two per delivery. Two processes may append
 * to one file, each with its own AppendLog (an app's journal: duet serve's trigger events, a
 * shell's deploy under the app's lock): every write is whole lines with O_APPEND, which a local
 * file system does not interleave. The cut after a short write (a full disk) is measured from
 * the end, so fragments of both writers are taken off again whatever their order, unless a
 * whole line landed between a fragment and its cut (room freed in that very moment).
 */
export class AppendLog {
  private handle: FileHandle | undefined;
  private waiting: Waiting[] = [];
  private flushing: Promise<void> | undefined;

  /**
   * `everyWriteDurable`: every line is fsync'd (`fsync: false` is ignored), and the file is opened
   * with O_DSYNC so that a batch costs one system call, the write, instead of a write and an
   * fsync: one trip through libuv's thread pool and back to the event loop, not two. For a log
   * whose every line is acknowledged to someone (webhook deliveries). O_DSYNC also syncs the file
   * size, which is all an append changes besides data.
   */
  constructor(
    readonly path: string,
    private readonly options: { everyWriteDurable?: boolean } = {},
  ) {}

  /**
   * With `fsync: false` the line is written (a killed process loses none) but not synced; a
   * later synced line syncs it too.
   */
  append(line: string, options: { fsync?: boolean } = {}): Promise<void> {
    const text = line.endsWith('\n') ? line : `${line}\n`;
    const fsync = options.fsync ?? true;
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ line: text, fsync, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Waits for what was appended, then closes the file; a later append opens it again. */
  async close(): Promise<void> {
    await this.flushing;
    await this.handle?.close();
    this.handle = undefined;
  }

  private async flush(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const handle = await this.opened();
        await this.writeAll(handle, Buffer.from(batch.map((w) => w.line).join('')));
        if (!this.options.everyWriteDurable && batch.some((w) => w.fsync)) await handle.sync();
        for (const w of batch) w.resolve();
      } catch (error) {
        for (const w of batch) w.reject(error);
        // A handle that failed (disk full, file removed) is not trusted with the next batch.
        await this.handle?.close().catch(() => {});
        this.handle = undefined;
      }
    }
    this.flushing = undefined;
  }

  /**
   * All of `bytes`, or none: a full disk takes part of a write (a short count) and fails the
   * next, and the callers of a batch that failed are told so (a webhook answered 503, redelivered
   * later), so the part that did land is cut off again. Left on disk it would be a line nobody
   * was promised, or worse, glued to the front of the next record.
   */
  private async writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.length) done += nonZero((await handle.write(bytes, done, bytes.length - done)).bytesWritten);
    } catch (error) {
      if (done > 0) {
        // Measured from the end, not from a remembered size: O_APPEND put the bytes there.
        // Should the cut fail too, the handle is dropped (flush) and opened() deals with the fragment.
        await handle
          .stat()
          .then(({ size }) => handle.truncate(size - done))
          .then(() => handle.sync())
          .catch(() => {});
      }
      throw error;
    }
  }

  /**
   * Opened on first use. A line torn by a crash (no final newline) gets its newline first, so
   * the next line is not glued onto the fragment.
   */
  private async opened(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const flags = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | (this.options.everyWriteDurable ? constants.O_DSYNC : 0);
    const handle = await open(this.path, flags, 0o644);
    try {
      const { size } = await handle.stat();
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) await handle.write('\n');
      }
    } catch (error) {
      await handle.close();
      throw error;
    }
    this.handle = handle;
    return handle;
  }
}

/** A write that took nothing and reported no error would loop forever: treat it as the error it is. */
function nonZero(bytesWritten: number): number {
  if (bytesWritten > 0) return bytesWritten;
  throw Object.assign(new Error('ENOSPC: the write took no bytes'), { code: 'ENOSPC' });
}
