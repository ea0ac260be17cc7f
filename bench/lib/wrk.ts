import { createHmac } from 'node:crypto';
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
  /** Webhook script: requests sent after its signed deliveries ran out (a body sent again). */
  exhausted: number;
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
  local exhausted = 0
  local counts = {}
  for _, t in ipairs(threads) do
    non2xx = non2xx + t:get("non2xx")
    exhausted = exhausted + (t:get("exhausted") or 0)
    for k, c in pairs(t:get("counts")) do counts[k] = (counts[k] or 0) + c end
  end
  local parts = {}
  for k, c in pairs(counts) do table.insert(parts, string.format('"%s":%d', k, c)) end
  local q = {}
  for _, p in ipairs({${QUANTILE_GRID.join(', ')}}) do table.insert(q, string.format('%d', latency:percentile(p))) end
  io.write(string.format(
    'BENCHJSON {"requests":%d,"non2xx":%d,"exhausted":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d,"duration_us":%d,"counts":{%s},"q":[%s]}\\n',
    summary.requests, non2xx, exhausted, summary.errors.connect, summary.errors.read, summary.errors.write,
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
 * A signed GitHub push delivery per request, each body different: duet answers a body it has
 * already accepted as a duplicate without writing a line (issue 15), so one body for all would
 * measure that shortcut, not intake. The body is <prefix><delivery id><suffix> (the id in a field
 * at its end); node signs every id beforehand (signDeliveries: wrk's LuaJIT has no crypto) into a
 * file of `<id> <X-Hub-Signature-256>` lines, which the script reads once and sends in turn, each
 * thread every BENCH_THREADS-th line from its own. A thread that runs out sends its last body
 * again and counts it in `exhausted`: the benchmark refuses such a run (a duplicate is not intake).
 */
const WEBHOOK_LUA = `
local prefix = os.getenv("BENCH_BODY_PREFIX")
local suffix = os.getenv("BENCH_BODY_SUFFIX")
local path = os.getenv("BENCH_PATH")
local stride = tonumber(os.getenv("BENCH_THREADS") or "1")
local signed = {}
for line in io.lines(os.getenv("BENCH_SIGNED")) do
  local id, signature = line:match("^(%S+) (%S+)$")
  signed[#signed + 1] = { id, signature }
end
threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
non2xx = 0
exhausted = 0
counts = {}
local n = 0
function request()
  local entry = signed[n * stride + tid + 1]
  if entry then n = n + 1 else
    exhausted = exhausted + 1
    entry = signed[(n - 1) * stride + tid + 1]
  end
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "push",
    ["X-Hub-Signature-256"] = entry[2],
    ["X-GitHub-Delivery"] = entry[1],
  }
  return wrk.format("POST", path, headers, prefix .. entry[1] .. suffix)
end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  local k = tostring(status)
  counts[k] = (counts[k] or 0) + 1
end
${DONE}`;

/**
 * Sign `count` deliveries for WEBHOOK_LUA: ids `<idPrefix>-<n>`, each body `<prefix><id><suffix>`
 * signed with `secret` as GitHub does; written to `file` one `<id> <signature>` line each.
 */
export async function signDeliveries(file: string, o: { prefix: string; suffix: string; secret: string; idPrefix: string; count: number }): Promise<void> {
  const lines: string[] = [];
  for (let n = 0; n < o.count; n += 1) {
    const id = `${o.idPrefix}-${n}`;
    const signature = createHmac('sha256', o.secret).update(o.prefix).update(id).update(o.suffix).digest('hex');
    lines.push(`${id} sha256=${signature}`);
  }
  await writeFile(file, `${lines.join('\n')}\n`);
}

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
    exhausted: number;
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
    exhausted: raw.exhausted,
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
    exhausted: sum((w) => w.exhausted),
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
