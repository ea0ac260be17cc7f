import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { TestContext } from 'node:test';
import { freePort } from './ports.js';

/**
 * A stand-in for the GitHub REST API on a loopback port. Octokit 7 uses the native fetch, which
 * nock cannot intercept, so the tests talk real HTTP to this. It records every request and answers
 * from per-route queues of programmed responses, falling back to a plausible 201.
 *
 *   const github = await startGitHubServer(t, { prefix: '/api/v3' });
 *   github.respond('POST', /\/statuses\//, 500, 201);          // first fails, second succeeds
 *   github.respond('POST', /\/statuses\//, { status: 422, body: { message: 'Validation Failed' } });
 *   github.respond('POST', /\/statuses\//, 'reset');            // drop the connection
 *   createGitHubClient({ apiUrl: github.url, token: 'x', retries: 0 });
 *   github.serveRelease('o/r', 'v2', [{ name: 'app.tar.gz', bytes, digest: true }]); // a release and its assets
 */

export interface RecordedRequest {
  method: string;
  /** The URL as received, prefix included. */
  url: string;
  /** The URL without the prefix: /repos/o/r/statuses/sha. */
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface FakeResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Answer after this long, to make in-flight overlap visible. */
  delayMs?: number;
  /** Sent as they are instead of `body` as JSON (an asset's bytes). */
  raw?: Buffer;
}

/** A status code, a full response, 'reset' to destroy the connection (a network error), or one made from the request. */
export type ProgrammedResponse = number | FakeResponse | 'reset' | ((request: RecordedRequest) => FakeResponse);

export interface FakeAsset {
  name: string;
  bytes: Buffer;
  /** Publish GitHub's `digest` (sha256 of `bytes`, or `digest` itself when a string). */
  digest?: boolean | string;
}

export interface GitHubServer {
  /** What to pass as apiUrl: http://127.0.0.1:<port><prefix>. */
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Queue responses for requests whose method matches and whose path matches `path`. */
  respond(method: string, path: RegExp, ...responses: ProgrammedResponse[]): void;
  /** Every request from now on matching `path` gets `response`; undefined clears it. Queued answers go first. */
  respondAlways(method: string, path: RegExp, response: ProgrammedResponse | undefined): void;
  /** Requests whose path matches, in arrival order. */
  matching(path: RegExp, method?: string): RecordedRequest[];
  /** Polls until `predicate` holds for the recorded requests; fails after timeoutMs. */
  waitFor(predicate: (requests: RecordedRequest[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Most requests on one path in flight at once, per path. */
  maxInFlight(path: RegExp): number;
  /**
   * Serve the release of `tag` in `repo` ("owner/name") with `assets`, as GitHub does: the release
   * with its assets' metadata, and each asset's bytes at /releases/assets/{id} with Accept:
   * application/octet-stream, by a 302 to a download URL.
   */
  serveRelease(repo: string, tag: string, assets: FakeAsset[]): void;
  /**
   * Add a successful GitHub Actions run of `workflow` (a file name) for `sha` in `repo` with its
   * artifacts (bytes: the zip GitHub would serve); runs list newest first, as GitHub lists them.
   * The zip is downloaded from /actions/artifacts/{id}/zip by a 302.
   */
  serveWorkflowRun(repo: string, run: { sha: string; workflow: string; artifacts: FakeArtifact[] }): void;
  /**
   * Serve the check runs (paginated by per_page/page) and the combined status of `sha` in `repo`,
   * each with an ETag, answering 304 to an If-None-Match that matches. The combined status holds
   * the statuses POSTed to the commit too (duet's own), the latest per context, as GitHub's does.
   */
  serveChecks(repo: string, sha: string): FakeChecks;
}

/** What GitHub says of a commit's CI (deploy_on.wait_for_checks); changed by the test as CI goes. */
export interface FakeChecks {
  set(state: { checkRuns?: Array<{ name: string; status: string; conclusion?: string | null }>; statuses?: Array<{ context: string; state: string }> }): void;
  /** Conditional requests answered 304 Not Modified (If-None-Match matched the ETag): they cost no rate limit on GitHub. */
  notModified(): number;
  /** GETs of the check runs and of the combined status. */
  reads(): number;
}

export interface FakeArtifact extends FakeAsset {
  expired?: boolean;
}

interface Route {
  method: string;
  path: RegExp;
  queue: ProgrammedResponse[];
  always?: ProgrammedResponse;
}

/** `port`: listen there (a receiver that comes up where a client already tried and was refused); a free one by default. */
export async function startGitHubServer(t: TestContext, options: { prefix?: string; port?: number } = {}): Promise<GitHubServer> {
  const prefix = (options.prefix ?? '').replace(/\/+$/, '');
  const requests: RecordedRequest[] = [];
  const routes: Route[] = [];
  const inFlight = new Map<string, number>();
  const peak: Array<{ path: string; count: number }> = [];
  let nextId = 1000;
  const runs: Array<{ repo: string; sha: string; workflow: string; id: number; artifacts: object[] }> = [];

  const pick = (method: string, path: string): ProgrammedResponse | undefined => {
    const matches = routes.filter((route) => route.method === method && route.path.test(path));
    const queued = matches.find((route) => route.queue.length > 0);
    if (queued) return queued.queue.shift();
    // The newest standing answer wins, so a test can switch the server from failing to working.
    return matches.reverse().find((route) => route.always !== undefined)?.always;
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        // Recorded as the raw text; a test asserting on it will say what arrived.
      }
      const url = req.url ?? '/';
      const method = req.method ?? 'GET';
      if (!url.startsWith(`${prefix}/`)) {
        requests.push({ method, url, path: url, headers: req.headers, body });
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Not Found (outside the API prefix)' }));
        return;
      }
      const path = url.slice(prefix.length).split('?')[0]!;
      requests.push({ method, url, path, headers: req.headers, body });
      const now = (inFlight.get(path) ?? 0) + 1;
      inFlight.set(path, now);
      peak.push({ path, count: now });
      const picked = pick(method, path) ?? 201;
      const programmed = typeof picked === 'function' ? picked(requests.at(-1)!) : picked;
      const finish = (): void => {
        inFlight.set(path, (inFlight.get(path) ?? 1) - 1);
        if (programmed === 'reset') {
          req.socket.destroy();
          return;
        }
        const response = typeof programmed === 'number' ? defaultBody(programmed, method, path, body, () => nextId++) : programmed;
        if (response.raw) {
          res.writeHead(response.status, { 'content-type': 'application/octet-stream', ...response.headers }).end(response.raw);
          return;
        }
        res
          .writeHead(response.status, { 'content-type': 'application/json', ...response.headers })
          .end(response.body === undefined ? '' : JSON.stringify(response.body));
      };
      const delay = typeof programmed === 'object' ? (programmed.delayMs ?? 0) : 0;
      if (delay > 0) setTimeout(finish, delay);
      else finish();
    });
  });

  const port = options.port ?? (await freePort());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );

  const url = `http://127.0.0.1:${port}${prefix}`;
  return {
    url,
    port,
    requests,
    respond(method, path, ...responses) {
      routes.push({ method, path, queue: responses });
    },
    serveRelease(repo, tag, assets) {
      const published = assets.map((asset) => {
        const id = nextId++;
        const sha = createHash('sha256').update(asset.bytes).digest('hex');
        const digest = typeof asset.digest === 'string' ? asset.digest : asset.digest ? `sha256:${sha}` : null;
        return { asset, meta: { id, name: asset.name, size: asset.bytes.length, digest, url: `${url}/repos/${repo}/releases/assets/${id}` } };
      });
      const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      routes.push({
        method: 'GET',
        path: new RegExp(`^/repos/${escaped(repo)}/releases/tags/${escaped(tag)}$`),
        queue: [],
        always: { status: 200, body: { id: nextId++, tag_name: tag, assets: published.map((p) => p.meta) } },
      });
      for (const { asset, meta } of published) {
        routes.push({
          method: 'GET',
          path: new RegExp(`^/repos/${escaped(repo)}/releases/assets/${meta.id}$`),
          queue: [],
          always: (request) =>
            String(request.headers.accept).includes('application/octet-stream')
              ? { status: 302, headers: { location: `${url}/_downloads/${meta.id}/${asset.name}` } }
              : { status: 200, body: meta },
        });
        routes.push({ method: 'GET', path: new RegExp(`^/_downloads/${meta.id}/`), queue: [], always: { status: 200, raw: asset.bytes } });
      }
    },
    serveWorkflowRun(repo, { sha, workflow, artifacts }) {
      const escaped = repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const query = (request: RecordedRequest): URLSearchParams => new URLSearchParams(request.url.split('?')[1] ?? '');
      const listRuns = (request: RecordedRequest, workflowFile?: string): FakeResponse => {
        const q = query(request);
        const found = runs
          .filter((r) => r.repo === repo && r.sha === q.get('head_sha') && (workflowFile === undefined || r.workflow === workflowFile))
          .reverse()
          .map((r) => ({ id: r.id, run_number: r.id, head_sha: r.sha, path: `.github/workflows/${r.workflow}`, conclusion: 'success' }));
        return { status: 200, body: { total_count: found.length, workflow_runs: found } };
      };
      if (!runs.some((r) => r.repo === repo)) {
        routes.push({ method: 'GET', path: new RegExp(`^/repos/${escaped}/actions/runs$`), queue: [], always: (request) => listRuns(request) });
        routes.push({
          method: 'GET',
          path: new RegExp(`^/repos/${escaped}/actions/workflows/[^/]+/runs$`),
          queue: [],
          always: (request) => {
            const file = request.path.split('/').at(-2)!;
            return runs.some((r) => r.repo === repo && r.workflow === file) ? listRuns(request, file) : { status: 404, body: { message: 'Not Found' } };
          },
        });
      }
      const id = nextId++;
      const published = artifacts.map((artifact) => {
        const artifactId = nextId++;
        const sha256 = createHash('sha256').update(artifact.bytes).digest('hex');
        const digest = typeof artifact.digest === 'string' ? artifact.digest : artifact.digest ? `sha256:${sha256}` : null;
        routes.push({
          method: 'GET',
          path: new RegExp(`^/repos/${escaped}/actions/artifacts/${artifactId}/zip$`),
          queue: [],
          always: { status: 302, headers: { location: `${url}/_downloads/${artifactId}/${artifact.name}.zip` } },
        });
        routes.push({ method: 'GET', path: new RegExp(`^/_downloads/${artifactId}/`), queue: [], always: { status: 200, raw: artifact.bytes } });
        const expired = artifact.expired ?? false;
        return { id: artifactId, name: artifact.name, size_in_bytes: artifact.bytes.length, expired, expires_at: '2026-12-01T00:00:00Z', digest };
      });
      runs.push({ repo, sha, workflow, id, artifacts: published });
      routes.push({
        method: 'GET',
        path: new RegExp(`^/repos/${escaped}/actions/runs/${id}/artifacts$`),
        queue: [],
        always: (request) => {
          const name = query(request).get('name');
          const found = published.filter((artifact) => name === null || artifact.name === name);
          return { status: 200, body: { total_count: found.length, artifacts: found } };
        },
      });
    },
    serveChecks(repo, sha) {
      const escaped = repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      let checkRuns: object[] = [];
      let statuses: Array<{ context: string; state: string }> = [];
      let notModified = 0;
      let reads = 0;
      const conditional = (request: RecordedRequest, body: unknown): FakeResponse => {
        reads += 1;
        const etag = `"${createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 32)}"`;
        if (request.headers['if-none-match'] === etag) {
          notModified += 1;
          return { status: 304, headers: { etag } };
        }
        return { status: 200, body, headers: { etag } };
      };
      const query = (request: RecordedRequest): URLSearchParams => new URLSearchParams(request.url.split('?')[1] ?? '');
      routes.push({
        method: 'GET',
        path: new RegExp(`^/repos/${escaped}/commits/${sha}/check-runs$`),
        queue: [],
        always: (request) => {
          const perPage = Number(query(request).get('per_page') ?? 30);
          const page = Number(query(request).get('page') ?? 1);
          return conditional(request, { total_count: checkRuns.length, check_runs: checkRuns.slice((page - 1) * perPage, page * perPage) });
        },
      });
      routes.push({
        method: 'GET',
        path: new RegExp(`^/repos/${escaped}/commits/${sha}/status$`),
        queue: [],
        always: (request) => {
          const posted = requests
            .filter((r) => r.method === 'POST' && r.path === `/repos/${repo}/statuses/${sha}`)
            .map((r) => r.body as { context: string; state: string });
          const latest = new Map<string, { context: string; state: string }>();
          for (const status of [...statuses, ...posted]) latest.set(status.context, { context: status.context, state: status.state });
          const all = [...latest.values()];
          const state = all.some((s) => s.state === 'failure' || s.state === 'error')
            ? 'failure'
            : all.some((s) => s.state === 'pending')
              ? 'pending'
              : 'success';
          return conditional(request, { state, sha, total_count: all.length, statuses: all });
        },
      });
      return {
        set(state) {
          if (state.checkRuns) checkRuns = state.checkRuns.map((run) => ({ id: nextId++, head_sha: sha, conclusion: null, ...run }));
          if (state.statuses) statuses = state.statuses;
        },
        notModified: () => notModified,
        reads: () => reads,
      };
    },
    respondAlways(method, path, response) {
      for (const route of routes) if (route.method === method && String(route.path) === String(path)) route.always = undefined;
      if (response !== undefined) routes.push({ method, path, queue: [], always: response });
    },
    matching(path, method) {
      return requests.filter((request) => path.test(request.path) && (method === undefined || request.method === method));
    },
    async waitFor(predicate, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(requests)) {
        if (Date.now() > deadline) throw new Error(`waitFor timed out; requests: ${requests.map((r) => `${r.method} ${r.url}`).join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    maxInFlight(path) {
      return Math.max(0, ...peak.filter((entry) => path.test(entry.path)).map((entry) => entry.count));
    },
  };
}

/** A bare status code gets the body GitHub would send with it. */
function defaultBody(status: number, method: string, path: string, body: unknown, id: () => number): FakeResponse {
  if (status === 201 && method === 'POST' && /\/deployments$/.test(path)) {
    return { status, body: { id: id(), sha: (body as { ref?: string }).ref, environment: 'production' } };
  }
  if (status >= 200 && status < 300) return { status, body: { id: id() } };
  const messages: Record<number, string> = {
    401: 'Bad credentials',
    403: 'Resource not accessible by integration',
    404: 'Not Found',
    422: 'Validation Failed',
    429: 'API rate limit exceeded',
  };
  return {
    status,
    body: { message: messages[status] ?? 'Server Error', documentation_url: 'https://docs.github.com/rest' },
  };
}
