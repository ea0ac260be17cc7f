import type { Octokit } from '@octokit/rest';
import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import type { ChecksGate, ChecksVerdict } from '../pipeline/check-wait.js';
import { decideChecks, type CheckRun, type CommitStatus } from './checks.js';

/**
 * deploy_on.wait_for_checks, GitHub's side: reads a commit's check runs (every page) and its
 * combined status through the REST API, and decides (checks.ts). A webhook about the commit
 * (check_run, check_suite, workflow_run, status) wakes the wait at once (`wake`); between them it
 * asks again every poll_s with If-None-Match, so an answer GitHub did not change (304) costs no
 * rate limit.
 */

const PER_PAGE = 100;
/** Refusals that asking again will not change: the token may not read checks or statuses, or the repo is gone. */
const FATAL = new Set([401, 403, 404]);

interface Cached {
  etag: string;
  data: unknown;
}

export class CheckGate implements ChecksGate {
  /** Per request (URL and page): the last answer and its ETag, for the next conditional request. */
  private readonly cache = new Map<string, Cached>();
  /** Per "owner/repo@sha", lower case: who to wake when GitHub says something changed. */
  private readonly sleepers = new Map<string, Set<() => void>>();

  constructor(private readonly options: { config: Config; client: Octokit; logger?: Logger }) {}

  /** A webhook said the checks or statuses of `sha` changed: the waits on it ask at once. How many were woken. */
  wake(repo: string, sha: string): number {
    const sleepers = this.sleepers.get(key(repo, sha));
    if (!sleepers) return 0;
    const woken = [...sleepers];
    for (const wake of woken) wake();
    return woken.length;
  }

  async wait(
    app: AppConfig,
    sha: string,
    options: { deadline: number; signal: AbortSignal; progress: (summary: string) => void },
  ): Promise<ChecksVerdict | undefined> {
    const settings = app.deploy_on.wait_for_checks!;
    const [owner, repo] = app.repo!.split('/') as [string, string];
    const ownContext = this.options.config.github.status_context.replaceAll('{app}', app.name);
    let last = 'no answer from GitHub yet';
    try {
      while (!options.signal.aborted) {
        try {
          const { checkRuns, statuses } = await this.read(owner, repo, sha);
          const decision = decideChecks({ checkRuns, statuses, required: settings.checks, ownContext });
          if (decision.verdict === 'green') return { state: 'green', summary: decision.summary };
          if (decision.verdict === 'red') return { state: 'failed', summary: decision.summary };
          last = decision.summary.replace(/^waiting for CI: /, '');
          options.progress(decision.summary);
        } catch (error) {
          const status = (error as { status?: number }).status;
          const message = (error as Error).message.split('\n')[0];
          if (status !== undefined && FATAL.has(status)) {
            return {
              state: 'errored',
              summary: `GitHub refused to show the checks of ${sha.slice(0, 7)} (${status}: ${message}): the token needs Checks: read and Commit statuses: read`,
            };
          }
          this.options.logger?.warn({ app: app.name, sha, err: message }, 'could not read the checks from GitHub; asking again');
        }
        const left = options.deadline - Date.now();
        if (left <= 0) return { state: 'errored', summary: `CI did not finish within ${settings.timeout_s} s (${last})` };
        await this.sleep(key(app.repo!, sha), Math.min(settings.poll_s * 1000, left), options.signal);
      }
      return undefined;
    } finally {
      for (const cached of this.cache.keys()) if (cached.includes(`/${sha}/`)) this.cache.delete(cached);
    }
  }

  /** The commit's latest check runs, every page, and its combined status's contexts. */
  private async read(owner: string, repo: string, sha: string): Promise<{ checkRuns: CheckRun[]; statuses: CommitStatus[] }> {
    const base = `/repos/${owner}/${repo}/commits/${sha}`;
    const checkRuns: CheckRun[] = [];
    for (let page = 1; ; page += 1) {
      const data = (await this.get(`${base}/check-runs`, { per_page: PER_PAGE, page, filter: 'latest' })) as { total_count: number; check_runs: CheckRun[] };
      checkRuns.push(...data.check_runs);
      if (data.check_runs.length < PER_PAGE || checkRuns.length >= data.total_count) break;
    }
    const combined = (await this.get(`${base}/status`, { per_page: PER_PAGE })) as { statuses: CommitStatus[] };
    return { checkRuns, statuses: combined.statuses };
  }

  /** GET with If-None-Match: GitHub's 304 (no rate limit spent) means the answer cached. */
  private async get(path: string, query: Record<string, string | number>): Promise<unknown> {
    const cacheKey = `${path}/?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}`;
    const cached = this.cache.get(cacheKey);
    try {
      const response = await this.options.client.request(`GET ${path}`, { ...query, headers: cached ? { 'if-none-match': cached.etag } : {} });
      const etag = response.headers.etag;
      if (etag) this.cache.set(cacheKey, { etag, data: response.data });
      return response.data;
    } catch (error) {
      if ((error as { status?: number }).status === 304 && cached) return cached.data;
      throw error;
    }
  }

  /** Until `ms` passed, a webhook about the commit woke it, or `signal` ended the wait. */
  private sleep(sleeperKey: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let sleepers = this.sleepers.get(sleeperKey);
      if (!sleepers) this.sleepers.set(sleeperKey, (sleepers = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        sleepers.delete(done);
        if (sleepers.size === 0 && this.sleepers.get(sleeperKey) === sleepers) this.sleepers.delete(sleeperKey);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      sleepers.add(done);
    });
  }
}

function key(repo: string, sha: string): string {
  return `${repo}@${sha}`.toLowerCase();
}
