import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './stats.js';

const now = (): number => performance.timeOrigin + performance.now();

export interface Probe {
  sentAt: number;
  answeredAt: number;
  status: number;
  version: string | undefined;
}

/** One GET with Connection: close (a fresh connection, as a new visitor would open). */
export function probe(port: number, path = '/', timeoutMs = 2000): Promise<Probe> {
  const sentAt = now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => {
        const header = res.headers['x-app-version'];
        resolve({ sentAt, answeredAt: now(), status: res.statusCode ?? 0, version: Array.isArray(header) ? header[0] : header });
      });
      res.on('error', () => resolve({ sentAt, answeredAt: now(), status: 0, version: undefined }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ sentAt, answeredAt: now(), status: 0, version: undefined }));
    req.end();
  });
}

/**
 * A tight loop of probes through the public port: one request at a time, each sent as soon as the
 * previous one is answered (well under a millisecond apart on loopback). It shows when the public
 * port starts answering with a new version.
 */
export function startPoller(port: number): { stop(): Promise<Probe[]> } {
  const probes: Probe[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      probes.push(await probe(port));
      // Let the event loop breathe if nothing answers (connection refused returns at once).
      if (probes.at(-1)!.status === 0) await sleep(1);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return probes;
    },
  };
}

/** The first probe answered by `version`: when the public port showed the new version. */
export function firstAnswerBy(probes: readonly Probe[], version: string, after = 0): Probe | undefined {
  return probes.find((p) => p.version === version && p.sentAt >= after);
}

export async function waitForVersion(port: number, version: string, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answer = await probe(port);
    if (answer.status === 200 && answer.version === version) return true;
    await sleep(20);
  }
  return false;
}

export async function waitForHealth(port: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await probe(port, '/health', 1000)).status === 200) return true;
    await sleep(20);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Paced (open-loop) load: requests at a fixed rate, whether or not earlier ones were answered.

export interface PacedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** A label of this request kept with its outcome (the delivery id). */
  id: string;
}

export interface PacedResult {
  offeredPerS: number;
  sent: number;
  /** 2xx answers. */
  acks: number;
  statuses: Record<string, number>;
  errors: number;
  firstError: string | undefined;
  /** From the moment each request was due (not when it was sent): includes any queueing. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** acks / (time from the first due request to the last answer). */
  acksPerS: number;
  /** Ids of the requests answered 2xx. */
  ackedIds: string[];
}

export async function pacedLoad(options: {
  port: number;
  ratePerS: number;
  durationMs: number;
  make: (index: number) => PacedRequest;
  timeoutMs?: number;
}): Promise<PacedResult> {
  const total = Math.max(1, Math.round((options.ratePerS * options.durationMs) / 1000));
  const interval = 1000 / options.ratePerS;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const ackedIds: string[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let lastAnswer = 0;
  const inFlight: Promise<void>[] = [];

  const send = (index: number, dueAt: number): Promise<void> => {
    const spec = options.make(index);
    return new Promise<void>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: options.port,
          method: spec.method,
          path: spec.path,
          agent,
          headers: { ...spec.headers, 'content-length': String(spec.body.length) },
          timeout: options.timeoutMs ?? 10_000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const at = now();
            lastAnswer = Math.max(lastAnswer, at);
            latencies.push(at - dueAt);
            const status = res.statusCode ?? 0;
            statuses[status] = (statuses[status] ?? 0) + 1;
            if (status >= 200 && status < 300) ackedIds.push(spec.id);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => {
        errors += 1;
        firstError ??= error.message;
        lastAnswer = Math.max(lastAnswer, now());
        resolve();
      });
      req.end(spec.body);
    });
  };

  const start = now();
  let next = 0;
  while (next < total) {
    const t = now();
    while (next < total && start + next * interval <= t) {
      inFlight.push(send(next, start + next * interval));
      next += 1;
    }
    if (next < total) {
      const wait = start + next * interval - now();
      // setTimeout has ~1 ms granularity; a due request is sent on the first tick at or after it.
      await sleep(Math.max(0, Math.min(wait, 5)));
    }
  }
  await Promise.all(inFlight);
  agent.destroy();
  const acks = ackedIds.length;
  const spanS = Math.max(lastAnswer - start, interval) / 1000;
  return {
    offeredPerS: options.ratePerS,
    sent: total,
    acks,
    statuses,
    errors,
    firstError,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length ? Math.max(...latencies) : null,
    acksPerS: acks / spanS,
    ackedIds,
  };
}
