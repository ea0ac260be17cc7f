import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AppendLog } from './append-log.js';
import { readFileIfExists, writeFileAtomic } from './atomic-file.js';

/**
 * The one way duet keeps a durable file of events: the apps' journals and the GitHub
 * outbox are each one of these. One JSON line per event:
 * - append: a whole line or nothing (AppendLog: a short write is cut off again), fsync'd unless
 *   asked not to, lines appended together sharing one write and fsync (group commit);
 * - read: every line that parses and passes `parse`; a line torn by a crash mid-append (or
 *   written by a future version) is counted as skipped, never fatal;
 * - rewrite (compaction): temp file, fsync, rename, fsync of the directory: a crash leaves the
 *   old file or the new one, never a half.
 *
 * `hold()` keeps the file open for the appends that follow, for a writer that is the file's only
 * one for a while (duet serve's triggers and outbox, a deploy under the app's lock); otherwise
 * each append opens and closes it, so that a file another process rewrites (renames over) is
 * never written through a stale handle.
 *
 * Within one process several EventLogs may share a file (an app's journal: duet serve's trigger
 * events and the deploy it runs): they share a gate by path, so that a rewrite waits for the
 * appends under way, holds back new ones until the new file is in place, and every held handle
 * is reopened on the new file. Across processes a rewrite is the caller's to exclude (the app's
 * lock, and journal-compaction.ts's serve check).
 */
interface PathGate {
  appending: Set<Promise<void>>;
  rewriting: Promise<void> | undefined;
  /** Bumped by each rewrite: a handle opened before it writes to the replaced file. */
  generation: number;
}

const gates = new Map<string, PathGate>();

function gateOf(path: string): PathGate {
  let gate = gates.get(path);
  if (!gate) {
    gate = { appending: new Set(), rewriting: undefined, generation: 0 };
    gates.set(path, gate);
  }
  return gate;
}
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
  private heldGeneration = 0;
  private dirReady = false;
  private readonly gate: PathGate;

  constructor(
    readonly path: string,
    private readonly options: EventLogOptions<E> = {},
  ) {
    this.gate = gateOf(path);
  }

  async append(event: E, options: { fsync?: boolean } = {}): Promise<void> {
    const line = JSON.stringify(event);
    while (this.gate.rewriting) await this.gate.rewriting;
    const appending = this.appendLine(line, options);
    this.gate.appending.add(appending);
    try {
      await appending;
    } finally {
      this.gate.appending.delete(appending);
    }
  }

  private async appendLine(line: string, options: { fsync?: boolean }): Promise<void> {
    if (this.held && this.heldGeneration !== this.gate.generation) {
      // Another EventLog of this process rewrote the file: this handle is on the old one (with
      // nothing pending: the rewrite waited for every append). Swapped before the await, so that
      // appends arriving meanwhile use the new one, and no second one is opened.
      const stale = this.held;
      this.held = this.newWriter();
      await stale.close();
    }
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
   * Replace the whole file with `events` (compaction). A held file is closed first and opened
   * again by the next append, on the new file. The caller makes sure no other process appends
   * while this runs (the only writer, or the app's lock); this process's appends wait.
   */
  async rewrite(events: readonly E[]): Promise<void> {
    await this.compact(() => events);
  }

  /**
   * Read the file, and replace it with what `select` keeps of its events (undefined: leave it),
   * with no append of this process in between: one that landed after the read would be lost.
   */
  async compact(select: (events: E[]) => readonly E[] | undefined): Promise<void> {
    while (this.gate.rewriting) await this.gate.rewriting;
    const rewriting = (async () => {
      await Promise.allSettled([...this.gate.appending]);
      const kept = select((await this.read()).events);
      if (kept === undefined) return;
      const wasHeld = this.held !== undefined;
      await this.release();
      await this.ensureDir();
      await writeFileAtomic(this.path, kept.map((event) => `${JSON.stringify(event)}\n`).join(''));
      this.gate.generation += 1;
      if (wasHeld) this.held = this.newWriter();
    })();
    this.gate.rewriting = rewriting;
    try {
      await rewriting;
    } finally {
      this.gate.rewriting = undefined;
    }
  }

  private newWriter(): AppendLog {
    this.heldGeneration = this.gate.generation;
    return new AppendLog(this.path, { everyWriteDurable: this.options.everyWriteDurable });
  }

  private async ensureDir(): Promise<void> {
    if (this.dirReady) return;
    await mkdir(dirname(this.path), { recursive: true });
    this.dirReady = true;
  }
}
