import { open } from 'node:fs/promises';
import type { CompactedEvent } from './compacted-deploys.js';
import { foldEvent, type DeployRecord, type JournalEvent } from './journal.js';

/**
 * A journal folded once and then kept up with: each look reads only the bytes appended since
 * the last one. The dashboard and the API asked for the whole journal on every request, and
 * parsing all of it cost 60-150 ms at 1.2 MB, growing with every deploy. The file is append-only
 * (see Journal); a file that shrank or was replaced (another inode) is read again from the start.
 */
export class JournalIndex {
  private byId = new Map<string, DeployRecord>();
  /** What compactions left of the deploys they dropped. */
  private compactedById = new Map<string, CompactedEvent>();
  private inode = -1;
  private offset = 0;
  /** One catch-up at a time: two requests reading the same new bytes would fold them twice. */
  private reading: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  /** All deploys, oldest first; copies, so a caller's record does not change under it. */
  async records(): Promise<DeployRecord[]> {
    await this.catchUp();
    return [...this.byId.values()].map((r) => structuredClone(r));
  }

  /** The newest `limit` deploys, oldest first. */
  async recent(limit: number): Promise<DeployRecord[]> {
    await this.catchUp();
    const all = [...this.byId.values()];
    return all.slice(Math.max(0, all.length - limit)).map((r) => structuredClone(r));
  }

  async record(id: string): Promise<DeployRecord | undefined> {
    await this.catchUp();
    const found = this.byId.get(id);
    return found && structuredClone(found);
  }

  /** The summary of a deploy compacted away (compacted-deploys.ts). */
  async compacted(id: string): Promise<CompactedEvent | undefined> {
    await this.catchUp();
    const found = this.compactedById.get(id);
    return found && { ...found };
  }

  private catchUp(): Promise<void> {
    const next = this.reading.then(() => this.readNew());
    // A failed read (EACCES, say) fails this request, not every later one.
    this.reading = next.catch(() => {});
    return next;
  }

  private async readNew(): Promise<void> {
    const handle = await open(this.path, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!handle) return this.reset(-1);
    try {
      const { ino, size } = await handle.stat();
      if (ino !== this.inode || size < this.offset) this.reset(ino);
      if (size <= this.offset) return;
      const bytes = Buffer.alloc(size - this.offset);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, this.offset);
      // Up to the last newline only: a line still being written is read whole next time.
      const end = bytes.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (end < 0) return;
      for (const line of bytes.subarray(0, end).toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        let event: JournalEvent;
        try {
          event = JSON.parse(line) as JournalEvent;
        } catch {
          continue; // a line torn by a crash mid-append, as Journal.events() skips it
        }
        if (event.type === 'compacted') this.compactedById.set(event.id, event);
        else foldEvent(this.byId, event);
      }
      this.offset += end + 1;
    } finally {
      await handle.close();
    }
  }

  private reset(inode: number): void {
    this.byId = new Map();
    this.compactedById = new Map();
    this.inode = inode;
    this.offset = 0;
  }
}
