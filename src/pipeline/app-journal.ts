import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Config } from '../config/load.js';
import { appPaths } from '../config/paths.js';
import { AppendLog } from '../util/append-log.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import { apply, type Deploy } from './deploy-state.js';
import type { JournalEvent } from './journal.js';
import { isTriggerEvent, type TriggerEvent } from './trigger.js';

/**
 * The one owner, in this process, of an app's journal (`<app>/journal.ndjson`, journal.ts): it
 * appends, follows the file (each look reads only the bytes appended since the last, by this
 * process or another: a `duet deploy` from the shell appends while duet serve runs) and compacts
 * it, and keeps every deploy folded by `apply` into its Deploy. duet serve's queue, each run, the
 * API and the dashboard of a process share it (appJournal), so a compaction holds back this
 * process's appends and nothing else writes through a handle on the replaced file. Across
 * processes appends are whole lines with O_APPEND; a compaction is excluded by the app's lock
 * and the serve check (journal-compaction.ts).
 *
 * Durability: a trigger's event is promised to someone (a 202, a commit status), so it is written
 * with O_DSYNC (group commit); a run's begin and end are fsync'd, its steps and facts are not
 * (some twenty fsyncs a deploy, each on its path: a killed duet loses none of them, and
 * after a power cut the re-run converges, every step checking the machine first). A line torn by
 * a crash is skipped on reading; a compaction is temp file, fsync, rename.
 */
export class AppJournal {
  private deploys = new Map<string, Deploy>();
  private inode = -1;
  private offset = 0;
  /** One catch-up at a time: two looks reading the same new bytes would fold them twice. */
  private reading: Promise<void> = Promise.resolve();
  private readonly durable: AppendLog;
  private readonly plain: AppendLog;
  private holders = 0;
  private dirReady = false;
  private readonly appending = new Set<Promise<void>>();
  private rewriting: Promise<void> | undefined;
  private readonly listeners: Array<(event: JournalEvent) => void> = [];
  /** Final trigger events the disk refused, applied in memory with a note until their line is written. */
  private readonly unsaved = new Map<string, { event: TriggerEvent; note: string }>();

  constructor(
    readonly app: string,
    readonly path: string,
  ) {
    this.durable = new AppendLog(path, { everyWriteDurable: true });
    this.plain = new AppendLog(path);
  }

  /**
   * Told of every event of the file, in order, from its first line on (the trigger store's
   * delivery index): the next look reads the file again from the start. Returns the way to stop.
   */
  onEvent(listener: (event: JournalEvent) => void): () => void {
    this.listeners.push(listener);
    this.inode = -1;
    return () => this.listeners.splice(this.listeners.indexOf(listener), 1);
  }

  /**
   * Appended whole (or not at all). A trigger's event is folded at once (the queue decides by
   * it): the deploy as it now is. A run's is folded by the next look: a deploy does not wait
   * for a read of the file after each of its steps.
   */
  async append(event: JournalEvent): Promise<Deploy | undefined> {
    while (this.rewriting) await this.rewriting;
    const writing = this.write(event);
    this.appending.add(writing);
    try {
      await writing;
    } finally {
      this.appending.delete(writing);
    }
    if (!isTriggerEvent(event)) return undefined;
    await this.catchUp();
    return this.deploys.get(event.id);
  }

  private async write(event: JournalEvent): Promise<void> {
    const everyWriteDurable = isTriggerEvent(event);
    if (!this.dirReady) {
      await mkdir(dirname(this.path), { recursive: true });
      this.dirReady = true;
    }
    // Not held: opened for this line only, so that a file another process compacts is never
    // written through a stale handle.
    const log = this.holders > 0 ? (everyWriteDurable ? this.durable : this.plain) : new AppendLog(this.path, { everyWriteDurable });
    try {
      await log.append(JSON.stringify(event), { fsync: event.type === 'begin' || event.type === 'end' });
    } finally {
      if (this.holders === 0) await log.close();
    }
  }

  /** Keep the file open for the appends that follow (duet serve's life, a run under the app's lock), until release(). */
  hold(): void {
    this.holders += 1;
  }

  async release(): Promise<void> {
    this.holders = Math.max(0, this.holders - 1);
    if (this.holders === 0) await this.closeWriters();
  }

  private async closeWriters(): Promise<void> {
    await this.durable.close();
    await this.plain.close();
  }

  /**
   * A final trigger event the disk did not take, applied anyway with `note` in its summary: a
   * deploy that ran did run. Its line is written later (TriggerStore's retry); reading it clears the note.
   */
  applyUnsaved(event: TriggerEvent, note: string): Deploy | undefined {
    this.unsaved.set(event.id, { event, note });
    this.applyNoted(event, note);
    return this.deploys.get(event.id);
  }

  /** The deploy as last read, without looking at the file (the queue's own writes are folded already). */
  peek(id: string): Deploy | undefined {
    return this.deploys.get(id);
  }

  /** Every deploy as last read, oldest first. */
  peekAll(): Deploy[] {
    return [...this.deploys.values()];
  }

  async deploy(id: string): Promise<Deploy | undefined> {
    await this.catchUp();
    return this.deploys.get(id);
  }

  /** Every deploy, oldest first (ids sort by time; a Map keeps the order they first appeared). */
  async all(): Promise<Deploy[]> {
    await this.catchUp();
    return [...this.deploys.values()];
  }

  /** Runs that began and never ended: their process died. Closed by the next lock holder. */
  async unfinished(): Promise<Deploy[]> {
    return (await this.all()).filter((d) => d.pid !== null && d.outcome === null && !d.compacted);
  }

  /**
   * The file replaced by what `select` keeps of its events (undefined: left alone), with no
   * append of this process in between: one that landed after the read would be lost.
   */
  async compact(select: (events: JournalEvent[]) => readonly JournalEvent[] | undefined): Promise<void> {
    while (this.rewriting) await this.rewriting;
    const rewriting = (async () => {
      await Promise.allSettled([...this.appending]);
      const kept = select(parseLines((await readFileIfExists(this.path)) ?? ''));
      if (kept === undefined) return;
      await this.closeWriters();
      await writeFileAtomic(this.path, kept.map((event) => `${JSON.stringify(event)}\n`).join(''));
    })();
    this.rewriting = rewriting;
    try {
      await rewriting;
    } finally {
      this.rewriting = undefined;
    }
    await this.catchUp();
  }

  private catchUp(): Promise<void> {
    const next = this.reading.then(() => this.readNew());
    // A failed read (EACCES, say) fails this look, not every later one.
    this.reading = next.catch(() => {});
    return next;
  }

  private async readNew(): Promise<void> {
    const handle = await open(this.path, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!handle) {
      if (this.inode !== -1) this.reset(-1);
      return;
    }
    try {
      const { ino, size } = await handle.stat();
      // Another inode (compacted), or shorter: read again from the start.
      const fresh = ino !== this.inode || size < this.offset;
      if (fresh) this.reset(ino);
      try {
        await this.readFrom(handle, size);
      } finally {
        // What the disk has not taken yet stays applied over what it has.
        if (fresh) for (const { event, note } of this.unsaved.values()) this.applyNoted(event, note);
      }
    } finally {
      await handle.close();
    }
  }

  private async readFrom(handle: FileHandle, size: number): Promise<void> {
    if (size <= this.offset) return;
    const bytes = Buffer.alloc(size - this.offset);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, this.offset);
    // Up to the last newline only: a line still being written is read whole next time.
    const end = bytes.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (end < 0) return;
    for (const event of parseLines(bytes.subarray(0, end).toString('utf8'))) this.read(event);
    this.offset += end + 1;
  }

  private read(event: JournalEvent): void {
    const waiting = this.unsaved.get(event.id);
    if (waiting && event.type === waiting.event.type) {
      // Its line is on disk now: the note that it was not saved goes.
      this.unsaved.delete(event.id);
      const deploy = this.deploys.get(event.id);
      if (deploy && 'summary' in event) this.deploys.set(event.id, { ...deploy, summary: event.summary });
    } else {
      this.applyOne(event);
    }
    for (const listener of this.listeners) listener(event);
  }

  private applyOne(event: JournalEvent): void {
    const next = apply(this.deploys.get(event.id), event, this.app);
    if (next) this.deploys.set(event.id, next);
  }

  private applyNoted(event: TriggerEvent, note: string): void {
    this.applyOne(event);
    const deploy = this.deploys.get(event.id);
    if (deploy) this.deploys.set(event.id, { ...deploy, summary: note });
  }

  private reset(inode: number): void {
    this.deploys = new Map();
    this.inode = inode;
    this.offset = 0;
  }
}

/** Every line that is an event; one torn by a crash mid-append (or of a future version) is skipped. */
function parseLines(text: string): JournalEvent[] {
  const events: JournalEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (isEvent(value)) events.push(value);
    } catch {
      // torn
    }
  }
  return events;
}

function isEvent(value: unknown): value is JournalEvent {
  if (typeof value !== 'object' || value === null) return false;
  const { type, id } = value as { type?: unknown; id?: unknown };
  return typeof type === 'string' && typeof id === 'string';
}

/** One AppJournal per app per process (per loaded configuration: a test's second config is a second process). */
const owners = new WeakMap<Pick<Config, 'stateDir'>, Map<string, AppJournal>>();

export function appJournal(config: Pick<Config, 'stateDir'>, app: string): AppJournal {
  let journals = owners.get(config);
  if (!journals) owners.set(config, (journals = new Map<string, AppJournal>()));
  let journal = journals.get(app);
  if (!journal) journals.set(app, (journal = new AppJournal(app, appPaths(config.stateDir, app).journal)));
  return journal;
}
