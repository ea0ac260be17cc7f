import type { Octokit } from '@octokit/rest';
import type { Logger } from 'pino';
import { isFinalDeploymentState, type CommitStatusReport, type DeploymentReport, type Report } from './reports.js';

/** One HTTP exchange with GitHub per call; when to retry is the reporter's business. */

async function sendCommitStatus(client: Octokit, report: CommitStatusReport): Promise<void> {
  await client.rest.repos.createCommitStatus({
    owner: report.owner,
    repo: report.repo,
    sha: report.sha,
    state: report.state,
    context: report.context,
    description: report.description,
    ...(report.targetUrl ? { target_url: report.targetUrl } : {}),
  });
}

async function createDeployment(client: Octokit, report: DeploymentReport): Promise<number> {
  const response = await client.rest.repos.createDeployment({
    owner: report.owner,
    repo: report.repo,
    ref: report.sha,
    environment: report.environment,
    // duet deploys the commit it was told to: GitHub must not merge the default branch into it,
    // nor refuse because some other check has not passed.
    auto_merge: false,
    required_contexts: [],
    description: report.description,
    payload: { trigger: report.triggerId },
  });
  const id = (response.data as { id?: unknown }).id;
  if (typeof id !== 'number') {
    // 202 carries a message instead of a deployment (an auto-merge happened): nothing to update.
    throw new PermanentError(`GitHub created no deployment (HTTP ${response.status})`);
  }
  return id;
}

async function sendDeploymentStatus(client: Octokit, report: DeploymentReport, deploymentId: number): Promise<void> {
  await client.rest.repos.createDeploymentStatus({
    owner: report.owner,
    repo: report.repo,
    deployment_id: deploymentId,
    state: report.state,
    description: report.description,
    environment: report.environment,
    ...(report.logUrl ? { log_url: report.logUrl } : {}),
  });
}

class PermanentError extends Error {}

interface FailureInfo {
  /** Retrying cannot help: GitHub refused the request itself. */
  permanent: boolean;
  status: number | undefined;
  /** GitHub's own explanation when it gave one. */
  message: string;
  /** What GitHub asked us to wait (Retry-After, rate limit reset), in ms. */
  waitMs: number | undefined;
}

interface ErrorLike {
  status?: unknown;
  message?: unknown;
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown };
}

/**
 * 5xx and network errors (Octokit reports those, and timeouts, as status 500) are transient. So
 * is 429, and a 403 that is really the rate limit. Any other 4xx (401 bad token, 404 repository
 * not visible to the token, 422 invalid field) will fail the same way every time.
 */
function classifyFailure(error: unknown): FailureInfo {
  if (error instanceof PermanentError) return { permanent: true, status: undefined, message: error.message, waitMs: undefined };
  const e = (typeof error === 'object' && error !== null ? error : {}) as ErrorLike;
  const status = typeof e.status === 'number' ? e.status : undefined;
  const headers = e.response?.headers ?? {};
  const message = githubMessage(e.response?.data) ?? (typeof e.message === 'string' ? e.message : String(error));
  const rateLimited = status === 429 || (status === 403 && (String(headers['x-ratelimit-remaining']) === '0' || /rate limit/i.test(message)));
  const permanent = status !== undefined && status >= 400 && status < 500 && !rateLimited;
  return { permanent, status, message, waitMs: rateLimited ? waitFromHeaders(headers, Date.now()) : undefined };
}

function githubMessage(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const body = data as { message?: unknown; errors?: unknown };
  if (typeof body.message !== 'string') return undefined;
  const details = Array.isArray(body.errors)
    ? body.errors
        .map((item: unknown) => {
          if (typeof item === 'string') return item;
          const detail = (item ?? {}) as { message?: unknown; field?: unknown; code?: unknown };
          return typeof detail.message === 'string' ? detail.message : [detail.field, detail.code].filter(Boolean).join(' ');
        })
        .filter((text) => text !== '')
    : [];
  return details.length > 0 ? `${body.message}: ${details.join('; ')}` : body.message;
}

function waitFromHeaders(headers: Record<string, string | number | undefined>, now: number): number | undefined {
  const retryAfter = Number(headers['retry-after']);
  if (Number.isFinite(retryAfter) && retryAfter > 0) return retryAfter * 1000;
  const reset = Number(headers['x-ratelimit-reset']);
  if (Number.isFinite(reset) && reset * 1000 > now) return reset * 1000 - now;
  return undefined;
}

/** `retry` carries what GitHub asked us to wait (Retry-After, rate limit reset), if anything. */
type Outcome = 'delivered' | 'dropped' | { retry: number | undefined };

/** The Deployment made for each deployment key, kept until a final status is delivered to it. */
export interface DeploymentIds {
  get(key: string): number | undefined;
  made(key: string, deploymentId: number): void;
  closed(key: string): void;
}

/** One attempt at one report: delivered, dropped (GitHub refused it for good), or to retry. */
export async function deliverReport(
  client: Octokit,
  key: string,
  report: Report,
  deployments: DeploymentIds,
  logger: Logger,
  attempt: number,
): Promise<Outcome> {
  const fields = { key, trigger: report.triggerId, state: report.state, attempt: attempt + 1 };
  try {
    if (report.type === 'status') {
      await sendCommitStatus(client, report);
    } else {
      let deploymentId = deployments.get(key);
      if (deploymentId === undefined) {
        deploymentId = await createDeployment(client, report);
        deployments.made(key, deploymentId);
      }
      await sendDeploymentStatus(client, report, deploymentId);
      if (isFinalDeploymentState(report.state)) deployments.closed(key);
    }
    logger.debug(fields, 'github: report delivered');
    return 'delivered';
  } catch (error) {
    const failure = classifyFailure(error);
    const detail = { ...fields, status: failure.status, github: failure.message };
    if (failure.permanent) {
      logger.error(detail, `github: report rejected (HTTP ${failure.status ?? '?'}): ${failure.message}; not retrying`);
      if (report.type === 'deployment' && isFinalDeploymentState(report.state)) deployments.closed(key);
      return 'dropped';
    }
    logger.warn(detail, `github: report not delivered: ${failure.message}; retrying`);
    return { retry: failure.waitMs };
  }
}
