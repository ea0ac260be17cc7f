import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

/**
 * Load for the intake: many large POSTs at once, each on its own connection, each writing the
 * same 1 MB chunk so that the test process itself stays small.
 */

export type FloodAnswer = { status: number; retryAfter: string | undefined } | { status: 'reset' };

export interface FloodRequest {
  /** Declared size; chunked when `declare` is false. */
  bytes: number;
  declare?: boolean;
  headers: Record<string, string>;
  /** Send only this much of the body and then wait for the answer (never finishing the body). */
  stallAfter?: number;
}

const CHUNK = Buffer.alloc(1024 * 1024, 0x20);

/** One POST; a connection the server closes while we still write is "reset", not an error. */
export function floodPost(url: string, options: FloodRequest): Promise<FloodAnswer> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json', ...options.headers };
    if (options.declare !== false) headers['content-length'] = options.bytes;
    let settled = false;
    const done = (answer: FloodAnswer): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(answer);
    };
    const req = request(url, { method: 'POST', headers, agent: false }, (res) => {
      const retry = res.headers['retry-after'];
      done({ status: res.statusCode ?? 0, retryAfter: Array.isArray(retry) ? retry[0] : retry });
    });
    req.on('error', () => done({ status: 'reset' }));
    // Headers go out now even when no byte of the body follows.
    req.flushHeaders();
    const stopAt = options.stallAfter ?? options.bytes;
    let written = 0;
    const write = (): void => {
      while (!settled && written < stopAt) {
        const part = CHUNK.subarray(0, Math.min(CHUNK.length, stopAt - written));
        written += part.length;
        if (!req.write(part)) return void req.once('drain', write);
      }
      if (!settled && options.stallAfter === undefined) req.end();
    };
    write();
  });
}

/** Resident set size of a process, in MB, from /proc. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  return Math.round(kb / 1024);
}

export interface Sampled<T> {
  result: T;
  peakRssMb: number;
  /** Every /healthz round trip during the load, in ms. */
  healthzMs: number[];
}

/** How often /healthz is asked during a load, each time on a connection of its own. */
const PROBE_EVERY_MS = 20;

/**
 * Runs `load` while sampling the process's RSS and asking for /healthz every 20 ms, on a new
 * connection each time as curl or a monitor would: a slow answer does not hold the next probe
 * back, and a new connection waits in the listen queue like any client's.
 */
export async function whileSampling<T>(pid: number, baseUrl: string, load: () => Promise<T>): Promise<Sampled<T>> {
  let running = true;
  let peakRssMb = await rssMb(pid);
  const healthzMs: number[] = [];
  const rssLoop = (async () => {
    while (running) {
      peakRssMb = Math.max(peakRssMb, await rssMb(pid));
      await sleep(20);
    }
  })();
  const probes: Array<Promise<void>> = [];
  const probeLoop = (async () => {
    while (running) {
      probes.push(probeHealthz(baseUrl).then((ms) => void healthzMs.push(ms)));
      await sleep(PROBE_EVERY_MS);
    }
  })();
  try {
    return { result: await load(), peakRssMb, healthzMs };
  } finally {
    running = false;
    await Promise.all([rssLoop, probeLoop]);
    await Promise.all(probes);
  }
}

/** One GET /healthz on a connection of its own: ms until the whole answer is in (60 s at most). */
function probeHealthz(baseUrl: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const done = (): void => resolve(Math.round(performance.now() - started));
    const req = request(`${baseUrl}/healthz`, { agent: false, timeout: 60_000 }, (res) => res.resume().once('end', done).once('error', done));
    req.once('error', done).once('timeout', () => req.destroy());
    req.end();
  });
}

/** The value below which `share` (0..1) of `values` lie. */
export function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(share * sorted.length) - 1)] ?? NaN;
}

export interface SustainedFlood {
  url: string;
  /** Connections at once; each sends its next body as soon as its previous one was answered. */
  parallel: number;
  seconds: number;
  bytes: number;
  headers: Record<string, string>;
}

/**
 * A flood on a worker thread of its own: writing megabytes to a hundred sockets keeps an event
 * loop busy, and the probes of whileSampling, on the test's loop, must time duet, not the flood.
 * Every other connection sends its bodies chunked, the others with a Content-Length.
 */
export function sustainedFlood(options: SustainedFlood): Promise<FloodAnswer[]> {
  const worker = new Worker(new URL('./flood-worker.js', import.meta.url), { workerData: options });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the flood's worker exited (code ${code}) without its answers`)));
  });
}
