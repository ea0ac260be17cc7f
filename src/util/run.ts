import type { Options, ResultPromise } from 'execa';
import { rm } from 'node:fs/promises';
import { inheritedEnv } from './child-env.js';
import type { CommandFailedError, StepName } from '../errors.js';
import { CombinedOutput, commandFailure, type OutputSink } from './command-output.js';
import { killGroup, recordStepGroup, stopGroup } from './step-group.js';
import { runThroughStepSocket } from './step-socket.js';
import type { EnvFromFiles } from './step-protocol.js';

interface RunOptions {
  /** The step name that a failure is reported under ("install", "nginx test", ...). */
  step: StepName;
  cwd?: string;
  /** Added to duet's own environment (to inheritedEnv() with forApp). */
  env?: Record<string, string>;
  /** The command runs the app's code (install, build): it gets a built environment, never duet's secrets. */
  forApp?: boolean;
  output?: OutputSink;
  timeoutMs?: number;
  /**
   * With timeoutMs and group: at the timeout the whole group gets SIGTERM, and SIGKILL this much
   * later if any of it still runs (a release is given the time to roll its transaction back).
   * Without it, a timeout is a SIGKILL at once.
   */
  graceMs?: number;
  hint?: string;
  /**
   * Run in a process group of its own, recorded at this path while it runs (see step-group.ts),
   * and killed whole when the command returns or times out: for installs and builds.
   */
  group?: string;
  /**
   * app_user: run it as that user, through this duet-step.socket (step-socket.ts), instead of as
   * a child of duet. Only with forApp. The connection is the group then: closing it ends the command.
   */
  stepSocket?: string;
  /** With an app's own stepSocket: which values of its env files, which only its runner holds, the command gets. */
  envFiles?: EnvFromFiles;
  /** How the command is shown in the output, errors and the group record, when not its argv. */
  shown?: string;
}

// Loaded on the first child process, not at startup: commands that only read state (status,
// enabled-instance, a socket-mode rollback) start sooner without it.
const loadExeca = async () => (await import('execa')).execa;

/**
 * Start loading what runArgv needs, without waiting: a deploy calls this first, so
 * the module loads while it takes the lock and git runs, not when its first build starts.
 */
export function preloadRun(): void {
  loadExeca().catch(() => {});
}

/** Run a program with an argument array: nothing is ever parsed by a shell. */
export async function runArgv(argv: readonly string[], options: RunOptions): Promise<string> {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('runArgv needs a program');
  const shown = options.shown ?? argv.join(' ');
  if (options.stepSocket !== undefined) return runThroughStepSocket(options.stepSocket, [...argv], shown, stepEnv(options), options);
  const execa = await loadExeca();
  return collect(execa(file, args, spawnOptions(options)), shown, options);
}

/** The whole environment a step socket's command gets: only ever the app's built one. */
function stepEnv(options: RunOptions): Record<string, string> {
  if (!options.forApp) throw new TypeError("stepSocket runs the app's code only (forApp)");
  return { ...inheritedEnv(), ...options.env };
}

type SpawnOptions = Options & { all: true; reject: false; stdin: 'ignore' };

function spawnOptions(options: RunOptions): SpawnOptions {
  return {
    cwd: options.cwd,
    env: options.forApp ? { ...inheritedEnv(), ...options.env } : options.env,
    extendEnv: !options.forApp,
    all: true,
    reject: false,
    stdin: 'ignore',
    // A graceful timeout is collect()'s own: execa's would kill only the shell, at once.
    timeout: graceful(options) ? undefined : options.timeoutMs,
    killSignal: 'SIGKILL',
    // Its own session and group: what it starts can be found and stopped as one, even by the
    // next duet process after this one was killed.
    detached: options.group !== undefined,
  };
}

const graceful = (options: RunOptions): boolean => options.graceMs !== undefined && options.timeoutMs !== undefined && options.group !== undefined;

async function collect(child: ResultPromise<SpawnOptions>, shown: string, options: RunOptions): Promise<string> {
  const pgid = options.group === undefined ? undefined : child.pid;
  if (pgid === undefined) return collectOutput(child, shown, options);
  // The group is stopped, not only the shell: SIGTERM, then SIGKILL after graceMs.
  let stopping: Promise<unknown> | undefined;
  const timer = graceful(options)
    ? setTimeout(() => {
        stopping = stopGroup(pgid, options.graceMs!);
      }, options.timeoutMs)
    : undefined;
  // Its own session: a Ctrl-C at the terminal no longer reaches it. Passed on, then duet stops
  // as it would have (unless it handles SIGINT itself, as duet serve does: then serve decides).
  const alone = process.listenerCount('SIGINT') === 0;
  const onInterrupt = (): void => {
    killGroup(pgid);
    if (alone) process.kill(process.pid, 'SIGINT');
  };
  process.once('SIGINT', onInterrupt);
  // Listening first: output written while the record is saved would be lost to the error's tail.
  const collecting = collectOutput(child, shown, options);
  // Awaited below, after the record is saved: a failure meanwhile is not unhandled.
  collecting.catch(() => {});
  try {
    // Without the record only the cleanup after a crash of duet is lost: never a reason to fail.
    await recordStepGroup(options.group!, pgid, shown).catch(() => {});
    const outcome = await collecting.then(
      (stdout) => ({ stdout }),
      (error: unknown) => ({ error }),
    );
    if (stopping !== undefined) {
      // Timed out, even if the shell then exited 0: the step ends once the whole group is gone.
      await stopping.catch(() => {});
      const tail = 'error' in outcome ? ((outcome.error as CommandFailedError).outputTail ?? '') : outcome.stdout;
      throw commandFailure(options, shown, undefined, tail, { timedOutMs: options.timeoutMs });
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.stdout;
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onInterrupt);
    // A timeout kills only the shell execa started; a background job would outlive a success.
    killGroup(pgid);
    await rm(options.group!, { force: true });
  }
}

async function collectOutput(child: ResultPromise<SpawnOptions>, shown: string, options: RunOptions): Promise<string> {
  const output = new CombinedOutput(options.output);
  child.all?.on('data', (chunk: Buffer) => output.add(chunk.toString()));
  const result = await child;
  if (result.failed) throw commandFailure(options, shown, result.exitCode, output.text || String(result.message ?? ''), { signal: result.signal });
  return typeof result.stdout === 'string' ? result.stdout : '';
}

export { lastLines, type OutputSink } from './command-output.js';
