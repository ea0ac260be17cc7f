import type { Config } from '../config/load.js';
import { commitStateOf } from '../error-kinds.js';
import type { Deploy } from '../pipeline/deploy-state.js';

/**
 * What the reporter sends to GitHub, as plain JSON: these objects are also written to the outbox
 * file, so a report enqueued before a restart can be sent by the next process.
 */

type CommitState = 'pending' | 'success' | 'failure' | 'error';
type DeploymentState = 'in_progress' | 'success' | 'failure' | 'error';

interface ReportBase {
  triggerId: string;
  owner: string;
  repo: string;
  sha: string;
  description: string;
}

export interface CommitStatusReport extends ReportBase {
  type: 'status';
  state: CommitState;
  context: string;
  targetUrl?: string;
}

export interface DeploymentReport extends ReportBase {
  type: 'deployment';
  state: DeploymentState;
  environment: string;
  logUrl?: string;
}

export type Report = CommitStatusReport | DeploymentReport;

/** GitHub answers 422 to a status description longer than this. */
const DESCRIPTION_LIMIT = 140;

/**
 * Reports with the same key are delivered in order and only the newest one matters. A commit
 * status is keyed by what GitHub keys it by (repo, sha, context), so a redeploy of the same commit
 * queues behind the earlier one; a deployment by its trigger, since each trigger creates its own.
 */
export function reportKey(report: Report): string {
  const repo = `${report.owner}/${report.repo}`;
  return report.type === 'status' ? `status ${repo} ${report.sha} ${report.context}` : `deployment ${repo} ${report.triggerId}`;
}

export function isFinalDeploymentState(state: DeploymentState): boolean {
  return state !== 'in_progress';
}

/**
 * Cut to the limit with an ellipsis. Counted both in code points and in UTF-16 units, so the cut
 * never splits an emoji and stays short whichever of the two GitHub counts.
 */
function truncateDescription(text: string, limit = DESCRIPTION_LIMIT): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  const points = Array.from(oneLine);
  if (points.length <= limit && oneLine.length <= limit) return oneLine;
  let cut = '';
  let count = 0;
  for (const point of points) {
    if (count + 1 > limit - 1 || cut.length + point.length > limit - 1) break;
    cut += point;
    count += 1;
  }
  return `${cut.trimEnd()}…`;
}

/** refs/tags/v2 -> v2, refs/heads/main -> main, a sha -> its first 7 characters. */
function shortRef(ref: string | null, sha: string | null): string {
  if (ref) {
    if (/^[0-9a-f]{40}$/i.test(ref)) return ref.slice(0, 7);
    return ref.replace(/^refs\/(?:heads|tags)\//, '');
  }
  return sha ? sha.slice(0, 7) : 'unknown ref';
}

interface ReportTarget {
  owner: string;
  repo: string;
  sha: string;
  context: string;
  targetUrl: string | undefined;
}

/** Where a trigger's statuses go, or why they go nowhere. */
export function resolveTarget(config: Config, trigger: Deploy): { target: ReportTarget } | { skip: string } {
  const app = config.apps.get(trigger.app);
  if (!app) return { skip: `app "${trigger.app}" is not in the configuration` };
  if (!app.repo) return { skip: `app "${trigger.app}" has no repo configured` };
  if (!trigger.resolvedSha) return { skip: 'no commit is known for this trigger yet' };
  const [owner, repo] = app.repo.split('/') as [string, string];
  const base = config.server.public_url?.replace(/\/+$/, '');
  return {
    target: {
      owner,
      repo,
      sha: trigger.resolvedSha,
      context: config.github.status_context.replaceAll('{app}', app.name),
      targetUrl: base ? `${base}/deploys/${encodeURIComponent(trigger.id)}` : undefined,
    },
  };
}

export type Phase = 'queued' | 'waiting' | 'started' | 'finished';

/** The state and text for one observer call. The summary is a final outcome, so only `finished` uses it. */
function describe(trigger: Deploy, phase: Phase, color: string | null, progress?: string): { state: CommitState; description: string } {
  if (phase === 'queued') return { state: 'pending', description: 'Queued' };
  // "Waiting for CI: 3 of 5 checks done" (deploy_on.wait_for_checks).
  if (phase === 'waiting') return { state: 'pending', description: capitalized(progress ?? 'waiting for CI') };
  if (phase === 'started') {
    const ref = shortRef(trigger.ref, trigger.resolvedSha);
    const verb = trigger.kind === 'rollback' ? 'Rolling back to' : trigger.kind === 'restart' ? 'Restarting' : 'Deploying';
    return { state: 'pending', description: color ? `${verb} ${ref} to ${color}` : `${verb} ${ref}` };
  }
  const summary = trigger.summary?.trim() || null;
  switch (trigger.state) {
    case 'succeeded':
      return { state: 'success', description: summary ?? (trigger.color ? `Live on ${trigger.color}` : 'Live') };
    case 'failed':
      return { state: commitStateOf('failed'), description: summary ?? 'Deploy failed' };
    case 'errored':
      return { state: commitStateOf('errored'), description: summary ?? 'duet failed internally' };
    case 'superseded':
      return { state: 'error', description: summary ?? `Superseded by ${trigger.supersededBy ?? 'a newer deploy'}` };
    default:
      // finished() with a state that is not final is a caller's bug; reporting it as still
      // pending is the one answer that does not claim an outcome that did not happen.
      return { state: 'pending', description: summary ?? 'Deploying' };
  }
}

export function statusReport(trigger: Deploy, target: ReportTarget, phase: Phase, color: string | null, progress?: string): CommitStatusReport {
  const { state, description } = describe(trigger, phase, color, progress);
  return {
    type: 'status',
    triggerId: trigger.id,
    owner: target.owner,
    repo: target.repo,
    sha: target.sha,
    state,
    context: target.context,
    description: truncateDescription(description),
    ...(target.targetUrl ? { targetUrl: target.targetUrl } : {}),
  };
}

export function deploymentReport(status: CommitStatusReport, target: ReportTarget): DeploymentReport {
  return {
    type: 'deployment',
    triggerId: status.triggerId,
    owner: status.owner,
    repo: status.repo,
    sha: status.sha,
    state: status.state === 'pending' ? 'in_progress' : status.state,
    environment: 'production',
    description: status.description,
    ...(target.targetUrl ? { logUrl: target.targetUrl } : {}),
  };
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A failover as duet serve's supervision reports it. */
export interface Failover {
  id: string;
  from: string;
  to: string;
  sha: string;
  fromSha: string | null;
}

/**
 * What GitHub hears of a failover: the commit that is no longer live gets an `error` status saying
 * so and why, the commit that serves again a `success` one, and with `github.deployments` the
 * environment a Deployment of it. None without a repo.
 */
export function failoverReports(config: Config, app: { name: string; repo?: string }, failover: Failover, reason: string): Report[] {
  if (!app.repo) return [];
  const [owner, repo] = app.repo.split('/') as [string, string];
  const base = config.server.public_url?.replace(/\/+$/, '');
  const link = base ? `${base}/deploys/${encodeURIComponent(failover.id)}` : undefined;
  const status = { type: 'status' as const, triggerId: failover.id, owner, repo, context: config.github.status_context.replaceAll('{app}', app.name) };
  const reports: Report[] = [];
  if (failover.fromSha && failover.fromSha !== failover.sha) {
    const description = `No longer live: failed over to ${failover.to} (${failover.sha.slice(0, 7)}): ${reason}`;
    reports.push({ ...status, sha: failover.fromSha, state: 'error', description: truncateDescription(description), ...(link ? { targetUrl: link } : {}) });
  }
  const from = `${failover.from}${failover.fromSha ? ` (${failover.fromSha.slice(0, 7)})` : ''}`;
  reports.push({
    ...status,
    sha: failover.sha,
    state: 'success',
    description: truncateDescription(`Live again by a failover from ${from}: ${reason}`),
    ...(link ? { targetUrl: link } : {}),
  });
  if (config.github.deployments) {
    const description = truncateDescription(`Failover to ${failover.to}: ${reason}`);
    reports.push({
      type: 'deployment',
      triggerId: failover.id,
      owner,
      repo,
      sha: failover.sha,
      state: 'success',
      environment: 'production',
      description,
      ...(link ? { logUrl: link } : {}),
    });
  }
  return reports;
}
