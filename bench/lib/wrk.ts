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

/** The 64 round constants of SHA-256 (FIPS 180-4, 4.2.2). */
const SHA256_K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
  0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
  0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
  0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
  0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/**
 * A signed GitHub push delivery per request, each body different: duet answers a body it has
 * already accepted as a duplicate without writing a line (issue 15), so one body for all would
 * measure that shortcut, not intake. The body is <prefix><delivery id><suffix> (the id in a field
 * at its end) and X-Hub-Signature-256 its HMAC-SHA256, computed here: wrk's LuaJIT has no crypto,
 * so SHA-256 is written out below, and the HMAC's inner hash of the key block and the fixed
 * prefix is computed once (its midstate), leaving 2-3 blocks to hash per request.
 * X-GitHub-Delivery is the same id: <prefix>-<thread>-<counter>.
 */
const WEBHOOK_LUA = `
local bit = require("bit")
local band, bor, bxor, bnot, rshift, lshift, ror, tobit = bit.band, bit.bor, bit.bxor, bit.bnot, bit.rshift, bit.lshift, bit.ror, bit.tobit
local K = { ${SHA256_K.map((k) => `0x${k.toString(16).padStart(8, '0')}`).join(', ')} }
local IV = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
local w = {}

-- One 64-byte block of s, from byte off, into the state H.
local function compress(H, s, off)
  for i = 0, 15 do
    local a, b, c, d = s:byte(off + i * 4, off + i * 4 + 3)
    w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
  end
  for i = 16, 63 do
    local x, y = w[i - 15], w[i - 2]
    w[i] = tobit(w[i - 16] + bxor(ror(x, 7), ror(x, 18), rshift(x, 3)) + w[i - 7] + bxor(ror(y, 17), ror(y, 19), rshift(y, 10)))
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for i = 0, 63 do
    local t1 = tobit(h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[i + 1] + w[i])
    local t2 = tobit(bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c)))
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end

local function copy(H) return { H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8] } end

-- Whole blocks of s into H; returns what is left (under 64 bytes).
local function absorb(H, s)
  local whole = #s - #s % 64
  for off = 1, whole, 64 do compress(H, s, off) end
  return s:sub(whole + 1)
end

-- The digest (32 bytes) of a message of total bytes whose last bytes, after H, are tail.
local function finish(H, tail, total)
  local bits = total * 8
  local pad = tail .. "\\128" .. string.rep("\\0", (55 - #tail) % 64) ..
    string.char(0, 0, 0, 0, band(rshift(bits, 24), 255), band(rshift(bits, 16), 255), band(rshift(bits, 8), 255), band(bits, 255))
  absorb(H, pad)
  local out = {}
  for i = 1, 8 do
    local v = H[i]
    out[i] = string.char(band(rshift(v, 24), 255), band(rshift(v, 16), 255), band(rshift(v, 8), 255), band(v, 255))
  end
  return table.concat(out)
end

local function tohex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

local prefix = os.getenv("BENCH_BODY_PREFIX")
local suffix = os.getenv("BENCH_BODY_SUFFIX")
local key = os.getenv("BENCH_SECRET")
assert(#key <= 64, "BENCH_SECRET: a key over 64 bytes is not supported")
key = key .. string.rep("\\0", 64 - #key)
local ipad = key:gsub(".", function(c) return string.char(bxor(c:byte(), 0x36)) end)
local opad = key:gsub(".", function(c) return string.char(bxor(c:byte(), 0x5c)) end)
local inner = copy(IV)
compress(inner, ipad, 1)
local inner_tail = absorb(inner, prefix)
local outer = copy(IV)
compress(outer, opad, 1)

local function sign(id)
  local tail = inner_tail .. id .. suffix
  local digest = finish(copy(inner), tail, 64 + #prefix + #id + #suffix)
  return "sha256=" .. tohex(finish(copy(outer), digest, 64 + 32))
end

local delivery_prefix = os.getenv("BENCH_DELIVERY_PREFIX")
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
  local id = delivery_prefix .. "-" .. tid .. "-" .. n
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "push",
    ["X-Hub-Signature-256"] = sign(id),
    ["X-GitHub-Delivery"] = id,
  }
  return wrk.format("POST", path, headers, prefix .. id .. suffix)
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
