import type { Logger } from 'pino';
import type { Color } from '../config/schema.js';
import type { RunStep } from '../errors.js';

/**
 * What a deploy tells whoever started it. The pipeline only reports; the CLI draws a progress
 * line on a terminal or prints plain lines; duet serve logs them and the API's log stream follows
 * the deploy's log.
 */
export interface DeployObserver {
  stepStarted(step: RunStep, what: string): void;
  stepEnded(step: RunStep, status: 'done' | 'skipped' | 'failed', ms: number, detail: string | undefined): void;
  note(text: string): void;
  /** The color the run makes live, once it picked it (the queue's "started" names it). */
  picked?(color: Color): void;
}

export const silentObserver: DeployObserver = {
  stepStarted() {},
  stepEnded() {},
  note() {},
};

/** One log line per deploy step (duet serve's deploys, which nobody watches on a terminal). */
export function loggingObserver(log: Logger | undefined): DeployObserver {
  return {
    stepStarted: (step, what) => log?.info({ step }, what),
    stepEnded: (step, status, ms, detail) => log?.info({ step, status, ms }, detail ?? `${step} ${status}`),
    note: (text) => log?.info(text),
  };
}
