import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { OutputSink } from '../util/run.js';

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

  /**
   * Called from output listeners (an install's stdout): a throw here would be uncaught and stop
   * duet serve. A log the disk no longer takes stops taking output; the deploy goes on, and its
   * outcome (kept elsewhere) says what happened.
   */
  write(chunk: string): void {
    if (this.fd === undefined || this.lost) return;
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
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export function deployLogPath(app: AppConfig, id: string): string {
  return join(app.paths.deployLogs, `${id}.log`);
}
