import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { SecretMask } from '../util/mask.js';
import type { OutputSink } from '../util/run.js';

/** A line without its end longer than this (a progress bar's \r updates) is written masked as it is. */
const HELD_MAX = 64 * 1024;

/**
 * The full output of one deploy: step lines and everything install/build/git printed. Written
 * synchronously so that what a crash interrupts is already in the file.
 */
export class DeployLog implements OutputSink {
  private fd: number | undefined;

  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    this.fd = openSync(path, 'a', 0o644);
  }

  /** Why the log stopped taking output (a full disk), if it did. */
  lost: Error | undefined;

  private mask = new SecretMask();
  /** With a mask: the end of the output not yet written, which may be the start of a secret. */
  private held = '';

  /** From now on the values are written as `***`, also one split across two chunks of output. */
  maskValues(values: string[]): void {
    this.flush();
    this.mask = new SecretMask(values);
  }

  /**
   * Called from output listeners (an install's stdout): a throw here would be uncaught and stop
   * duet serve. A log the disk no longer takes stops taking output; the deploy goes on, and its
   * outcome (kept elsewhere) says what happened.
   */
  write(chunk: string): void {
    if (this.mask.empty) return this.writeOut(chunk);
    // Whole lines go out at once; a line's unfinished end waits for the chunk that completes it
    // (a chunk may end in the middle of a secret), or for close, or until it is very long.
    const text = this.held + chunk;
    const cut = text.length > HELD_MAX ? text.length : text.lastIndexOf('\n') + 1;
    this.held = text.slice(cut);
    this.writeOut(this.mask.apply(text.slice(0, cut)));
  }

  private flush(): void {
    const rest = this.held;
    this.held = '';
    if (rest) this.writeOut(this.mask.apply(rest));
  }

  private writeOut(chunk: string): void {
    if (this.fd === undefined || this.lost || chunk === '') return;
    try {
      writeSync(this.fd, chunk);
    } catch (error) {
      this.lost = error as Error;
    }
  }

  line(text: string): void {
    this.write(`[${new Date().toISOString()}] ${text}\n`);
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export function deployLogPath(app: AppConfig, id: string): string {
  return join(app.paths.deployLogs, `${id}.log`);
}
