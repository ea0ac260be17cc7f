/**
 * Whether a commit's CI is green (deploy_on.wait_for_checks), decided without I/O from what
 * GitHub's REST API says of it: its check runs (GitHub Actions and other apps) and its combined
 * commit status (older CI services). check-gate.ts asks GitHub and calls this.
 */

/** The fields read of a check run (GET /repos/{owner}/{repo}/commits/{ref}/check-runs). */
export interface CheckRun {
  id: number;
  name: string;
  /** queued, in_progress, completed (and waiting, requested, pending). */
  status: string;
  /** Once completed: success, failure, neutral, cancelled, skipped, timed_out, action_required, stale, startup_failure. */
  conclusion: string | null;
}

/** The fields read of one context of the combined status (GET /repos/{owner}/{repo}/commits/{ref}/status). */
export interface CommitStatus {
  context: string;
  /** success, pending, failure or error. */
  state: string;
}

interface ChecksInput {
  checkRuns: readonly CheckRun[];
  statuses: readonly CommitStatus[];
  /** all: every check run and status there is; or the names required (a check run's name or a status's context). */
  required: 'all' | readonly string[];
  /** duet's own status context, never waited for: its "waiting for CI" would wait for itself. */
  ownContext: string;
}

type ChecksDecision =
  | { verdict: 'green'; summary: string }
  | { verdict: 'red'; failed: string; summary: string }
  | { verdict: 'pending'; done: number; total: number; summary: string };

const PASSING = new Set(['success', 'neutral', 'skipped']);

export function decideChecks(input: ChecksInput): ChecksDecision {
  const runs = latestPerName(input.checkRuns.filter((run) => run.name !== input.ownContext));
  const statuses = input.statuses.filter((status) => status.context !== input.ownContext);
  const named = input.required === 'all' ? undefined : new Set(input.required);
  const required = named ? runs.filter((run) => named.has(run.name)) : runs;

  const failedRun = required.find((run) => run.status === 'completed' && !PASSING.has(run.conclusion ?? ''));
  if (failedRun) {
    const conclusion = failedRun.conclusion ?? 'no conclusion';
    return { verdict: 'red', failed: failedRun.name, summary: `CI check "${failedRun.name}" ${shownConclusion(conclusion)}` };
  }
  const failedStatus = statuses.find((status) => status.state === 'failure' || status.state === 'error');
  if (failedStatus) {
    return { verdict: 'red', failed: failedStatus.context, summary: `CI status "${failedStatus.context}" is ${failedStatus.state}` };
  }

  // A named check not reported yet counts as one not done (a status of that name stands for it).
  const missing = named ? [...named].filter((name) => !runs.some((run) => run.name === name) && !statuses.some((s) => s.context === name)) : [];
  const total = required.length + statuses.length + missing.length;
  const done = required.filter((run) => run.status === 'completed').length + statuses.filter((status) => status.state !== 'pending').length;
  if (total === 0) {
    // Right after a push GitHub may not have a check suite yet: nothing reported is not "green".
    return { verdict: 'pending', done: 0, total: 0, summary: 'waiting for CI: no checks reported yet' };
  }
  if (done < total) return { verdict: 'pending', done, total, summary: `waiting for CI: ${done} of ${total} checks done` };
  return { verdict: 'green', summary: `CI green: ${total} ${total === 1 ? 'check' : 'checks'} passed` };
}

/** A check re-run is a new check run of the same name: only the newest attempt counts (ids grow). */
function latestPerName(runs: readonly CheckRun[]): CheckRun[] {
  const latest = new Map<string, CheckRun>();
  for (const run of runs) {
    const seen = latest.get(run.name);
    if (!seen || run.id > seen.id) latest.set(run.name, run);
  }
  return [...latest.values()];
}

function shownConclusion(conclusion: string): string {
  if (conclusion === 'timed_out') return 'timed out';
  if (conclusion === 'action_required') return 'needs an action';
  return conclusion === 'failure' ? 'failed' : `ended ${conclusion.replaceAll('_', ' ')}`;
}
