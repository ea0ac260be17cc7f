import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AppendLog } from './append-log.js';
import { readFileIfExists, writeFileAtomic } from './atomic-file.js';

/**
 * A durable file of events: the GitHub and notify outboxes are each one of these. One JSON line per event:
 * - append: a whole line or nothing (AppendLog: a short write is cut off again), fsync'd unless
 *   asked not to, lines appended together sharing one write and fsync (group commit);
 * - read: every line that parses and passes `parse`; a line torn by a crash mid-append (or
 *   written by a future version) is counted as skipped, never fatal;
 * - rewrite (compaction): temp file, fsync, rename, fsync of the directory: a crash leaves the
 *   old file or the new one, never a half.
 *
 * `hold()` keeps the file open for the appends that follow, for a writer that is the file's only
 * one for a while (an outbox's writer); otherwise each append opens and closes it, so that a file
 * another process rewrites (renames over) is never written through a stale handle. One EventLog
 * is a file's one owner in a process: its caller keeps a rewrite from interleaving with its
 * appends (OutboxWriter). The apps' journals have their own owner, AppJournal.
 */
interface EventLogOptions<E> {
  /** An event from a parsed line, or undefined for one that is not (skipped). Default: any JSON. */
  parse?: (value: unknown) => E | undefined;
  /** Every append fsync'd, with O_DSYNC (see AppendLog): for a log whose lines are promised to someone. */
  everyWriteDurable?: boolean;
}

interface EventLogContents<E> {
  events: E[];
  /** Lines that were not events: torn by a crash, or not understood. */
  skipped: number;
}

export class EventLog<E> {
  private held: AppendLog | undefined;
  private dirReady = false;

  constructor(
    readonly path: string,
    private readonly options: EventLogOptions<E> = {},
  ) {}

  async append(event: E, options: { fsync?: boolean } = {}): Promise<void> {
    const line = JSON.stringify(event);
    if (this.held) return this.held.append(line, options);
    await this.ensureDir();
    const once = this.newWriter();
    try {
      await once.append(line, options);
    } finally {
      await once.close();
    }
  }

  /** Keep the file open for the appends that follow, until release(). */
  async hold(): Promise<void> {
    if (this.held) return;
    await this.ensureDir();
    this.held = this.newWriter();
  }

  /** Waits for the appends under way, then closes the file. */
  async release(): Promise<void> {
    const held = this.held;
    this.held = undefined;
    await held?.close();
  }

  async read(): Promise<EventLogContents<E>> {
    const text = (await readFileIfExists(this.path)) ?? '';
    const parse = this.options.parse ?? ((value: unknown) => value as E);
    const events: E[] = [];
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let event: E | undefined;
      try {
        event = parse(JSON.parse(line));
      } catch {
        event = undefined;
      }
      if (event === undefined) skipped += 1;
      else events.push(event);
    }
    return { events, skipped };
  }

  /**
   * Replace the whole file with `events` (compaction): temp file, fsync, rename. A held file is
   * closed first and opened again on the new file. The caller makes sure no append of its own
   * runs meanwhile (OutboxWriter), and that no other process appends (the only writer).
   */
  async rewrite(events: readonly E[]): Promise<void> {
    const wasHeld = this.held !== undefined;
    await this.release();
    await this.ensureDir();
    await writeFileAtomic(this.path, events.map((event) => `${JSON.stringify(event)}\n`).join(''));
    if (wasHeld) this.held = this.newWriter();
  }

  private newWriter(): AppendLog {
    return new AppendLog(this.path, { everyWriteDurable: this.options.everyWriteDurable });
  }

  private async ensureDir(): Promise<void> {
    if (this.dirReady) return;
    await mkdir(dirname(this.path), { recursive: true });
    this.dirReady = true;
  }
}
