/** A run's steps, in the order a deploy takes them (acts use some of them): what the journal records. */
export type RunStep = 'resolve' | 'pick' | 'update' | 'release' | 'start' | 'health' | 'switch' | 'verify' | 'watch' | 'retire' | 'record';

/**
 * Every step an error can name: a run's own, the parts of one (the install of an update, nginx's
 * reload in a switch), and what happens outside a run (the config, the lock, duet serve's intake).
 * A union, so that a misspelled step is a build error, not a journal entry nobody can group by.
 */
export type StepName =
  | RunStep
  | 'stop'
  | 'install'
  | 'build'
  | 'prune'
  | 'nginx test'
  | 'nginx reload'
  | 'nginx start'
  | 'socket permissions'
  | 'tls'
  | 'certificate'
  | 'config'
  | 'lock'
  | 'queue'
  | 'trigger'
  | 'serve'
  | 'webhook'
  | 'status'
  | 'logs'
  | 'notify'
  | 'checks';

/**
 * What an error means to whoever hears of it: error-kinds.ts maps each kind to the CLI's exit
 * code, the HTTP status, the deploy's final state and GitHub's. `machine` (an errno error that
 * reached no step) and `internal` (a fault of duet) are not DuetErrors.
 */
export type ErrorKind = 'input' | 'unknown-app' | 'unavailable' | 'failure' | 'machine' | 'internal';

/**
 * Every failure duet reports is a DuetError: it names the step that failed (when one did) and
 * tells the operator what to do next. Its class decides its kind.
 */
export class DuetError extends Error {
  readonly kind: ErrorKind = 'failure';
  readonly step: StepName | undefined;
  readonly hint: string | undefined;

  constructor(message: string, options: { step?: StepName; hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.step = options.step;
    this.hint = options.hint;
  }
}

/** What was asked is wrong (a ref, a payload, an argument): exit code 2, HTTP 400. */
export class InvalidInputError extends DuetError {
  override readonly kind: ErrorKind = 'input';
}

/** The configuration file is missing or invalid. */
export class ConfigError extends InvalidInputError {
  constructor(message: string, hint?: string) {
    super(message, { step: 'config', hint });
  }
}

/** The command line is wrong: no step ran. */
export class UsageError extends InvalidInputError {
  constructor(message: string, hint?: string) {
    super(message, { hint });
  }
}

/** A child command (install, build, nginx -t, git) exited non-zero. */
export class CommandFailedError extends DuetError {
  readonly command: string;
  readonly exitStatus: number | undefined;
  /** The signal that ended it, when one did and it is known (SIGKILL: the OOM killer's). */
  readonly signal: string | undefined;
  readonly outputTail: string;
  /** Stopped by duet for running longer than this. */
  readonly timedOutMs: number | undefined;

  constructor(options: {
    step: StepName;
    command: string;
    exitStatus: number | undefined;
    signal?: string;
    outputTail: string;
    hint?: string;
    timedOutMs?: number;
  }) {
    const how =
      options.timedOutMs !== undefined
        ? `did not finish within ${options.timedOutMs / 1000} s and was stopped`
        : options.exitStatus !== undefined
          ? `exited with code ${options.exitStatus}`
          : options.signal
            ? `was killed (${options.signal})`
            : 'was killed';
    const tail = options.outputTail.trim();
    super(`${options.step}: \`${options.command}\` ${how}${tail ? `\n--- last output ---\n${tail}` : ''}`, {
      step: options.step,
      hint: options.hint,
    });
    this.command = options.command;
    this.exitStatus = options.exitStatus;
    this.signal = options.signal;
    this.outputTail = options.outputTail;
    this.timedOutMs = options.timedOutMs;
  }
}

/**
 * A fault of duet itself (a TypeError, an assertion that did not hold) met during a step: not
 * the deploy's failure (the app, git, nginx, the disk), and never reported as one. Deliberately
 * not a DuetError: the queue records it as `errored`, GitHub gets `error`, the API answers 500.
 */
export class InternalError extends Error {
  readonly step: StepName;

  constructor(step: StepName, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`internal error in duet at ${step}: ${reason} (a bug in duet, not in the app; the stack is in the deploy log)`, { cause });
    this.name = 'InternalError';
    this.step = step;
  }
}

/**
 * What the machine refused (ENOSPC, EACCES, ECONNREFUSED...): the deploy's failure, not duet's
 * fault. Only errno codes: Node's own ERR_* codes (a wrong argument, an invalid state) are duet's bugs.
 */
export function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/** Whether `error`, or an error that caused it, is the disk being full (ENOSPC). */
export function isDiskFull(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) if (isSystemError(cause) && cause.code === 'ENOSPC') return true;
  return false;
}

/** How every message of a full disk begins: the deploy's summary is then the message itself (queue-run.ts). */
export const DISK_FULL = 'the disk is full (ENOSPC)';

/**
 * The disk refused to store what `step` had to write: said as such, not as "internal error" or a
 * bare errno, with where to make room. Like every refusal of the machine, the deploy's failure.
 */
export class DiskFullError extends DuetError {
  constructor(step: StepName | undefined, what: string, stateDir: string, cause: unknown) {
    super(`${DISK_FULL}${step ? ` at ${step}` : ''}: ${what}`, {
      step,
      cause,
      hint: `free space on the disk holding the state dir (df -h ${stateDir}; old deploy logs, app logs, caches), then deploy again: it converges from what the machine shows`,
    });
  }
}

/**
 * What the machine refused during `step` (a `NodeJS.ErrnoException`), as the deploy's failure at
 * that step (or between steps): a full disk named (DiskFullError), anything else with the
 * system's own words.
 */
export function machineError(step: StepName | undefined, error: NodeJS.ErrnoException, stateDir: string): DuetError {
  const detail = error.message.split('\n')[0]!;
  if (isDiskFull(error)) return new DiskFullError(step, detail, stateDir, error);
  return new DuetError(step ? `${step}: ${detail}` : detail, { step, cause: error });
}

export function describeError(error: unknown): string {
  if (error instanceof DuetError) {
    return error.hint ? `${error.message}\nhint: ${error.hint}` : error.message;
  }
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/** A trigger or request named an app the configuration does not have (HTTP 404). */
export class UnknownAppError extends DuetError {
  override readonly kind: ErrorKind = 'unknown-app';

  constructor(app: string) {
    super(`no app named "${app}" is configured`, { hint: 'check the app name, or add it to duet.yml' });
  }
}

/**
 * duet cannot take the request now, but will: HTTP answers 503, so GitHub shows the delivery as
 * failed and it can be redelivered (a full disk, a server shutting down).
 */
class UnavailableError extends DuetError {
  override readonly kind: ErrorKind = 'unavailable';
}

/** duet serve is stopping: a trigger that comes now is not accepted; the next serve takes it. */
export class ShuttingDownError extends UnavailableError {
  constructor() {
    super('duet is shutting down', { step: 'trigger', hint: 'send it again in a moment: the restarted duet serve takes it' });
  }
}

/**
 * A record duet answers for (an accepted trigger, a change of its state) could not be written
 * whole and synced: a full or read-only disk. Nothing was promised on it, so the HTTP side
 * answers 503 and GitHub shows the delivery as failed, to be redelivered once there is room.
 */
export class NotSavedError extends UnavailableError {
  readonly path: string;

  constructor(what: string, path: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`could not save ${what} in ${path}: ${reason}`, {
      step: 'trigger',
      cause,
      hint: `free space on the disk holding ${path} (df -h), or make it writable again; then redeliver from the webhook's Recent Deliveries on GitHub, or send the request again`,
    });
    this.path = path;
  }
}

/**
 * A rollback names the commit it undoes (`from`), and another one is live: someone rolled back or
 * deployed since it was asked for. It changes nothing: a failure (exit 1, HTTP 409) naming `live`.
 */
export class NotLiveError extends DuetError {
  constructor(
    app: string,
    from: string,
    readonly live: { color: string; sha: string },
  ) {
    const now = live.sha.slice(0, 7);
    super(`${app}: the rollback was to undo ${from.slice(0, 7)}, but ${now} is live on ${live.color}; nothing was changed`, {
      step: 'pick',
      hint: `someone may have rolled back or deployed meanwhile: check that ${now} is what has to go (duet status ${app}), then name it: duet rollback ${app} --from ${now}, or the API's {"from": "${now}"}`,
    });
  }
}
