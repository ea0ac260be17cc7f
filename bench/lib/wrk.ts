import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { track } from './cleanup.js';

/**
 * wrk runs and their results. wrk is started with a long duration and stopped with SIGINT (it then
 * prints its summary and runs the script's done()), so a load covers exactly the deploys it
 * surrounds. The Lua scripts count what wrk's summary does not: every non-2xx (wrk only counts
 * status > 399), which versions answered, and for webhooks the acknowledgements.
 */

export interface WrkResult {
  requests: number;
  /** Responses whose status is not 2xx. */
  non2xx: number;
  /** Socket errors as wrk counts them. */
  errors: { connect: number; read: number; write: number; timeout: number };
  socketErrors: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  durationS: number;
  requestsPerS: number;
  /** Load script: requests answered per X-App-Version. Webhook script: count per status code. */
  counts: Record<string, number>;
  /** Latency (µs) at each percentile of QUANTILE_GRID: only to merge runs, not kept in results. */
  quantilesUs?: number[];
}

/**
 * The percentiles each wrk run reports besides p50/p90/p99, so that the runs of one row (one per
 * deploy) merge into one distribution (mergeWrk): every half percent, finer towards the tail.
 */
export const QUANTILE_GRID: readonly number[] = [...Array.from({ length: 199 }, (_, i) => (i + 1) / 2), 99.6, 99.7, 99.8, 99.9, 99.95, 99.99];

const DONE = `
function done(summary, latency, requests)
  local non2xx = 0
  local counts = {}
  for _, t in ipairs(threads) do
    non2xx = non2xx + t:get("non2xx")
    for k, c in pairs(t:get("counts")) do counts[k] = (counts[k] or 0) + c end
  end
  local parts = {}
  for k, c in pairs(counts) do table.insert(parts, string.format('"%s":%d', k, c)) end
  local q = {}
  for _, p in ipairs({${QUANTILE_GRID.join(', ')}}) do table.insert(q, string.format('%d', latency:percentile(p))) end
  io.write(string.format(
    'BENCHJSON {"requests":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d,"duration_us":%d,"counts":{%s},"q":[%s]}\\n',
    summary.requests, non2xx, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, summary.duration, table.concat(parts, ","), table.concat(q, ",")))
end
`;

/** GET / through nginx; BENCH_CONN_CLOSE=1 adds `Connection: close` (a new connection per request). */
const LOAD_LUA = `
if os.getenv("BENCH_CONN_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
threads = {}
function setup(thread) table.insert(threads, thread) end
non2xx = 0
counts = {}
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  local v = headers["x-app-version"] or ("status-" .. status)
  counts[v] = (counts[v] or 0) + 1
end
${DONE}`;

/**
 * A signed GitHub push delivery: the body and its X-Hub-Signature-256 are computed once (they do
 * not change); X-GitHub-Delivery is unique per request: <prefix>-<thread>-<counter>.
 */
const WEBHOOK_LUA = `
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
local signature = os.getenv("BENCH_SIGNATURE")
local prefix = os.getenv("BENCH_DELIVERY_PREFIX")
local path = os.getenv("BENCH_PATH")
threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
non2xx = 0
counts = {}
local n = 0
function request()
  n = n + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "push",
    ["X-Hub-Signature-256"] = signature,
    ["X-GitHub-Delivery"] = prefix .. "-" .. tid .. "-" .. n,
  }
  return wrk.format("POST", path, headers, body)
end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  local k = tostring(status)
  counts[k] = (counts[k] or 0) + 1
end
${DONE}`;

export async function writeLuaScripts(dir: string): Promise<{ load: string; webhook: string }> {
  const load = join(dir, 'load.lua');
  const webhook = join(dir, 'webhook.lua');
  await writeFile(load, LOAD_LUA);
  await writeFile(webhook, WEBHOOK_LUA);
  return { load, webhook };
}

export interface WrkOptions {
  url: string;
  script: string;
  threads: number;
  connections: number;
  env?: Record<string, string>;
  /** Without stop(), wrk ends by itself after this long. */
  durationS?: number;
  timeoutS?: number;
}

export interface WrkRun {
  stop(): Promise<WrkResult>;
  /** Resolves when wrk ended by itself (durationS). */
  done(): Promise<WrkResult>;
}

export function startWrk(options: WrkOptions): WrkRun {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.durationS ?? 3600}s`,
    `--timeout`,
    `${options.timeoutS ?? 2}s`,
    '-s',
    options.script,
    options.url,
  ];
  const child: ResultPromise = execa('wrk', args, { reject: false, stdin: 'ignore', env: options.env, extendEnv: true });
  void track(child, child); // awaited below
  const finish = async (): Promise<WrkResult> => {
    const result = await child;
    return parseWrk(String(result.stdout), `wrk ${args.join(' ')} exited ${result.exitCode}: ${String(result.stderr)}`);
  };
  return {
    async stop() {
      child.kill('SIGINT');
      return finish();
    },
    done: finish,
  };
}

export function parseWrk(stdout: string, context: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith('BENCHJSON '));
  if (!line) throw new Error(`no result from wrk (${context})\n${stdout}`);
  const raw = JSON.parse(line.slice('BENCHJSON '.length)) as {
    requests: number;
    non2xx: number;
    connect: number;
    read: number;
    write: number;
    timeout: number;
    p50: number;
    p90: number;
    p99: number;
    max: number;
    duration_us: number;
    counts: Record<string, number>;
    q: number[];
  };
  const durationS = raw.duration_us / 1e6;
  const errors = { connect: raw.connect, read: raw.read, write: raw.write, timeout: raw.timeout };
  return {
    requests: raw.requests,
    non2xx: raw.non2xx,
    errors,
    socketErrors: errors.connect + errors.read + errors.write + errors.timeout,
    p50Ms: raw.p50 / 1000,
    p90Ms: raw.p90 / 1000,
    p99Ms: raw.p99 / 1000,
    maxMs: raw.max / 1000,
    durationS,
    requestsPerS: durationS > 0 ? raw.requests / durationS : 0,
    counts: raw.counts,
    quantilesUs: raw.q,
  };
}

/**
 * Several wrk runs as one: counts add up, and the percentiles are those of the mixture of the
 * runs' latency distributions, each weighted by its requests (each run's distribution is known at
 * the QUANTILE_GRID points and interpolated linearly between them).
 */
export function mergeWrk(runs: readonly WrkResult[]): WrkResult {
  if (runs.length === 0) throw new Error('mergeWrk: no runs');
  const sum = (pick: (w: WrkResult) => number): number => runs.reduce((total, w) => total + pick(w), 0);
  const counts: Record<string, number> = {};
  for (const w of runs) for (const [k, c] of Object.entries(w.counts)) counts[k] = (counts[k] ?? 0) + c;
  const errors = {
    connect: sum((w) => w.errors.connect),
    read: sum((w) => w.errors.read),
    write: sum((w) => w.errors.write),
    timeout: sum((w) => w.errors.timeout),
  };
  const requests = sum((w) => w.requests);
  const durationS = sum((w) => w.durationS);
  const maxMs = Math.max(...runs.map((w) => w.maxMs));
  const quantile = mixtureQuantile(runs);
  return {
    requests,
    non2xx: sum((w) => w.non2xx),
    errors,
    socketErrors: sum((w) => w.socketErrors),
    p50Ms: quantile(50),
    p90Ms: quantile(90),
    p99Ms: quantile(99),
    maxMs,
    durationS,
    requestsPerS: durationS > 0 ? requests / durationS : 0,
    counts,
  };
}

/**
 * p -> latency (ms) of the request-weighted mixture of the runs; NaN (shown as n/a) when no run
 * answered a request. A run that answered some but lacks its percentile grid is an error, not
 * left out: the merge would lean towards the others.
 */
function mixtureQuantile(runs: readonly WrkResult[]): (p: number) => number {
  const answered = runs.filter((w) => w.requests > 0);
  if (answered.some((w) => w.quantilesUs?.length !== QUANTILE_GRID.length)) throw new Error('mergeWrk: a wrk run without its percentile grid');
  const parts = answered.map((w) => ({ weight: w.requests, xs: [...w.quantilesUs!.map((us) => us / 1000), w.maxMs], ps: [...QUANTILE_GRID, 100] }));
  const total = parts.reduce((t, part) => t + part.weight, 0);
  if (total === 0) return () => Number.NaN;
  // One run's CDF (in percent) at x, linear between its known points.
  const cdf = (xs: number[], ps: number[], x: number): number => {
    if (x < xs[0]!) return 0;
    if (x >= xs.at(-1)!) return 100;
    let i = 1;
    while (xs[i]! <= x) i += 1;
    const [x0, x1, p0, p1] = [xs[i - 1]!, xs[i]!, ps[i - 1]!, ps[i]!];
    return x1 === x0 ? p1 : p0 + ((p1 - p0) * (x - x0)) / (x1 - x0);
  };
  const mixed = (x: number): number => parts.reduce((t, part) => t + (part.weight / total) * cdf(part.xs, part.ps, x), 0);
  const candidates = [...new Set(parts.flatMap((part) => part.xs))].sort((a, b) => a - b);
  return (p) => {
    let previous = candidates[0]!;
    for (const x of candidates) {
      const at = mixed(x);
      if (at >= p) {
        const before = mixed(previous);
        return at === before ? x : previous + ((x - previous) * (p - before)) / (at - before);
      }
      previous = x;
    }
    return candidates.at(-1)!;
  };
}
