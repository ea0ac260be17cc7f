import { DuetError, isSystemError, type ErrorKind } from './errors.js';

/** A deploy that did not succeed: its own failure (GitHub `failure`), or a fault of duet's (`error`). */
type Ending = { state: 'failed'; github: 'failure' } | { state: 'errored'; github: 'error' };

/** A deploy's final state when it ends with an error, and GitHub's commit state for it. */
type FailedState = Ending['state'];
type FailedCommitState = Ending['github'];

/**
 * The one table of what an error means to whoever hears of it: the CLI's exit code (0 success,
 * 1 the operation failed, 2 the caller asked wrongly), the HTTP status of an API or webhook
 * answer, the deploy's final state, and the state GitHub shows on the commit.
 */
const KINDS: Readonly<Record<ErrorKind, { exit: 1 | 2; http: number } & Ending>> = {
  // A ref, a field, an argument, the config: the caller's to fix.
  input: { exit: 2, http: 400, state: 'failed', github: 'failure' },
  'unknown-app': { exit: 2, http: 404, state: 'failed', github: 'failure' },
  // duet cannot take it now but will (a full disk, shutting down): send it again.
  unavailable: { exit: 1, http: 503, state: 'failed', github: 'failure' },
  // The app, git, nginx refused; through the API, duet understood and will not (nothing to roll back to).
  failure: { exit: 1, http: 409, state: 'failed', github: 'failure' },
  // An errno error no step wrapped: the machine refused, still the deploy's failure.
  machine: { exit: 1, http: 500, state: 'failed', github: 'failure' },
  // A bug of duet's (a TypeError, Node's own ERR_* codes): never reported as the deploy's failure.
  internal: { exit: 1, http: 500, state: 'errored', github: 'error' },
};

function errorKind(error: unknown): ErrorKind {
  if (error instanceof DuetError) return error.kind;
  return isSystemError(error) ? 'machine' : 'internal';
}

export function exitCodeOf(error: unknown): 1 | 2 {
  return KINDS[errorKind(error)].exit;
}

export function httpStatusOf(error: unknown): number {
  return KINDS[errorKind(error)].http;
}

/** How a deploy that ended with `error` ended: `failed` or `errored`. */
export function failedStateOf(error: unknown): FailedState {
  return KINDS[errorKind(error)].state;
}

/** GitHub's commit state for a deploy that ended `failed` or `errored`: the one the table pairs with it. */
export function commitStateOf(state: FailedState): FailedCommitState {
  return Object.values(KINDS).find((row) => row.state === state)!.github;
}
