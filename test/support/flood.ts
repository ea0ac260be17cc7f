import { readFile } from 'node:fs/promises';
import { request } from 'node:http';

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

/** Runs `load` while sampling the process's RSS and timing /healthz back to back. */
export async function whileSampling<T>(pid: number, baseUrl: string, load: () => Promise<T>): Promise<Sampled<T>> {
  let running = true;
  let peakRssMb = await rssMb(pid);
  const healthzMs: number[] = [];
  const rssLoop = (async () => {
    while (running) {
      peakRssMb = Math.max(peakRssMb, await rssMb(pid));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const healthLoop = (async () => {
    while (running) {
      const started = performance.now();
      const answer = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(60_000) }).catch(() => undefined);
      await answer?.arrayBuffer();
      healthzMs.push(Math.round(performance.now() - started));
    }
  })();
  try {
    return { result: await load(), peakRssMb, healthzMs };
  } finally {
    running = false;
    await Promise.all([rssLoop, healthLoop]);
  }
}
