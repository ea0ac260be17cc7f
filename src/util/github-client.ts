import { Octokit } from '@octokit/rest';
import { retry } from '@octokit/plugin-retry';
import type { Logger } from 'pino';

interface GitHubClientOptions {
  /** https://api.github.com, or https://ghe.example.com/api/v3 for GitHub Enterprise Server. */
  apiUrl: string;
  token: string;
  /**
   * In-request retries of 5xx, 429 and network errors by @octokit/plugin-retry (it waits 1 s,
   * 4 s, 9 s). The status reporter retries on its own after that, so tests pass 0.
   */
  retries?: number;
  userAgent?: string;
  /** A request that hangs would stall every later report for the same commit: give up on it. */
  timeoutMs?: number;
  /** Octokit's own request lines go here at debug level; default: nowhere. */
  logger?: Logger;
}

const RetryingOctokit = Octokit.plugin(retry);

export function createGitHubClient(options: GitHubClientOptions): Octokit {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const logger = options.logger;
  // Only the one-line messages are passed on. Octokit's `debug` call carries the whole request
  // options, Authorization header included, so it is dropped: the token must never be logged.
  const forward = (message: string): void => logger?.debug({ component: 'octokit' }, String(message));
  const ignore = (): void => {};
  return new RetryingOctokit({
    auth: options.token,
    // Octokit joins baseUrl and the route by concatenation: a trailing slash would double up.
    baseUrl: options.apiUrl.replace(/\/+$/, ''),
    userAgent: options.userAgent ?? 'duet',
    retry: { retries: options.retries ?? 3 },
    request: {
      // A timeout surfaces as an AbortError, which Octokit reports as status 500: retried.
      fetch: (url: string | URL, init?: RequestInit) => fetch(url, { ...init, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) }),
    },
    log: { debug: ignore, info: forward, warn: forward, error: forward },
  });
}
