import { connect } from 'node:net';
import { DuetError, type StepName } from '../errors.js';
import { CombinedOutput, commandFailure, type OutputSink } from './command-output.js';
import { LineSplitter, STEP_PROTOCOL_VERSION, type EnvFromFiles, type StepFrame, type StepRequest } from './step-protocol.js';

/**
 * app_user: run one install or build command as the app user, through duet-step.socket. systemd
 * accepts each connection by starting `duet step-runner` as that user (step-runner.ts), so duet
 * needs no privilege to switch users, and the command is not in duet's process tree, cgroup or
 * mount namespace: it cannot read duet's credentials or memory. Ending the connection ends it.
 */

interface StepSocketOptions {
  step: StepName;
  cwd?: string;
  output?: OutputSink;
  timeoutMs?: number;
  /** With timeoutMs: the runner stops the group with SIGTERM at the timeout, SIGKILL this much later. */
  graceMs?: number;
  hint?: string;
  /** An app's own step socket: which of its env files' values the command gets. */
  envFiles?: EnvFromFiles;
}

const MAX_FRAME = 1024 * 1024;

export async function runThroughStepSocket(
  socketPath: string,
  argv: string[],
  shown: string,
  env: Record<string, string>,
  options: StepSocketOptions,
): Promise<string> {
  const request: StepRequest = {
    v: STEP_PROTOCOL_VERSION,
    cwd: options.cwd ?? process.cwd(),
    argv,
    env,
    ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    ...(options.envFiles !== undefined ? { envFiles: options.envFiles } : {}),
  };
  const output = new CombinedOutput(options.output);
  const lines = new LineSplitter(MAX_FRAME);
  const socket = connect(socketPath);
  socket.setEncoding('utf8');
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  try {
    const exit = await new Promise<StepFrame>((resolve, reject) => {
      let ended: StepFrame | undefined;
      socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
      socket.on('data', (chunk: string) => {
        try {
          for (const line of lines.push(chunk)) {
            const frame = JSON.parse(line) as StepFrame;
            if ('out' in frame) output.add(frame.out);
            else ended = frame;
          }
        } catch (error) {
          reject(new DuetError(`duet-step.socket answered what is not its protocol: ${(error as Error).message}`, { step: options.step }));
        }
      });
      socket.once('error', (error: NodeJS.ErrnoException) => reject(unreachable(socketPath, options.step, error)));
      socket.once('close', () => resolve(ended ?? { error: 'the step runner closed the connection without an exit status (killed?)' }));
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          resolve({ exit: { code: null, signal: 'SIGKILL' } });
        }, options.timeoutMs);
      }
    });
    if (timedOut) throw commandFailure(options, shown, undefined, output.text, { timedOutMs: options.timeoutMs });
    if ('error' in exit) throw commandFailure(options, shown, undefined, `${output.text}\n${exit.error}`);
    if (!('exit' in exit) || exit.exit.code !== 0) {
      const code = 'exit' in exit && exit.exit.signal === null ? (exit.exit.code ?? undefined) : undefined;
      throw commandFailure(options, shown, code, output.text, { signal: ('exit' in exit && exit.exit.signal) || undefined });
    }
    return output.text;
  } finally {
    clearTimeout(timer);
    // Also what stops the command on a timeout: the runner kills its group when duet hangs up.
    socket.destroy();
  }
}

/**
 * A request that runs no command (`check`, `mask`: step-protocol.ts) to an app's own step socket,
 * whose runner holds its env files: the frames it answered.
 */
export async function askStepSocket(
  socketPath: string,
  ask: Pick<StepRequest, 'check' | 'mask' | 'env'>,
  step: StepName,
  timeoutMs = 30_000,
): Promise<StepFrame[]> {
  const request: StepRequest = { v: STEP_PROTOCOL_VERSION, cwd: '/', argv: ['true'], ...ask };
  const lines = new LineSplitter(MAX_FRAME + (ask.mask?.length ?? 0) * 2);
  const frames: StepFrame[] = [];
  const socket = connect(socketPath);
  socket.setEncoding('utf8');
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new DuetError(`the step runner at ${socketPath} did not answer within ${timeoutMs / 1000} s`, { step })),
        timeoutMs,
      );
      socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
      socket.on('data', (chunk: string) => {
        try {
          for (const line of lines.push(chunk)) frames.push(JSON.parse(line) as StepFrame);
        } catch (error) {
          reject(new DuetError(`the step runner at ${socketPath} answered what is not its protocol: ${(error as Error).message}`, { step }));
        }
      });
      socket.once('error', (error: NodeJS.ErrnoException) => reject(unreachable(socketPath, step, error)));
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    socket.destroy();
  }
  const failed = frames.find((frame): frame is { error: string } => 'error' in frame);
  if (failed) throw new DuetError(`the step runner at ${socketPath} refused: ${failed.error}`, { step, hint: 'run `sudo duet install` again' });
  return frames;
}

function unreachable(socketPath: string, step: StepName, error: NodeJS.ErrnoException): DuetError {
  return new DuetError(`cannot reach the step runner at ${socketPath} (${error.code ?? error.message}): the install and build run as app_user through it`, {
    step,
    hint: 'is duet-step.socket running? `sudo systemctl start duet-step.socket` (duet install writes and enables it with app_user)',
    cause: error,
  });
}
