import { CommandFailedError, type StepName } from '../errors.js';

/** Where a child's combined output goes besides duet's memory: a deploy log, a terminal. */
export interface OutputSink {
  write(chunk: string): void;
}

const TAIL_LINES = 20;

/** A command's stdout and stderr as they came, passed on to the sink, its tail kept for errors. */
export class CombinedOutput {
  text = '';

  constructor(private readonly sink: OutputSink | undefined) {}

  add(text: string): void {
    this.text += text;
    // Keep memory bounded on chatty installs: only the tail is ever reported.
    if (this.text.length > 64_000) this.text = this.text.slice(-32_000);
    this.sink?.write(text);
  }
}

/** The error of a command that did not succeed: exit status (undefined: killed), last output, hint; how it ended besides (duet stopped it at its timeout, a signal). */
export function commandFailure(
  options: { step: StepName; hint?: string },
  shown: string,
  exitStatus: number | undefined,
  output: string,
  how: { timedOutMs?: number; signal?: string } = {},
): CommandFailedError {
  const notFound = exitStatus === 127 ? commandNotFoundHint(output) : undefined;
  return new CommandFailedError({
    step: options.step,
    command: shown,
    exitStatus,
    signal: how.signal,
    outputTail: lastLines(output, TAIL_LINES),
    hint: notFound && options.hint ? `${notFound}; ${options.hint}` : (notFound ?? options.hint),
    ...(how.timedOutMs !== undefined ? { timedOutMs: how.timedOutMs } : {}),
  });
}

/**
 * Exit code 127 is the shell's "command not found". In a build that is nearly always a tool from
 * devDependencies (`tsc`, `nest`, `vite`) that is not listed or was left out, or a binary not on PATH.
 */
function commandNotFoundHint(output: string): string {
  const missing = /(?:^|\n)(?:.*?: )?(?:\d+: )?([^\s:]+): (?:command )?not found/.exec(output)?.[1];
  const what = missing ? `\`${missing}\` was not found (exit 127)` : 'a command was not found (exit 127)';
  return `${what}: a tool the build needs that package.json does not list (duet installs the devDependencies for the build unless the install command or env sets --omit/--production), or a program not on PATH`;
}

export function lastLines(text: string, count: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-count).join('\n');
}
