import { Worker } from 'node:worker_threads';

/**
 * Paced (open-loop) load: requests at a fixed rate, whether or not earlier ones were answered.
 *
 * The generator runs on a worker thread of its own, with nothing else on its event loop and a
 * small heap. On the benchmark's main thread it shared the event loop with the copying of the
 * servers' logs and the heap with everything else: one 36 ms mark-compact pause of that heap sent
 * requests up to 35 ms late and saw answers 45 ms late, all counted as the server's latency. On
 * its own thread it sends 99% of requests within 1-4 ms of when they are due at up to 200/s.
 */

export interface PacedTemplate {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Each request carries `${idPrefix}-${index}` in this header (the delivery id). */
  idHeader: string;
  idPrefix: string;
  /**
   * A body of its own per request instead of `body`: `<prefix><id><suffix>`, its HMAC-SHA256
   * with `secret` in X-Hub-Signature-256 (a GitHub delivery of a push not seen before).
   */
  signedPerRequest?: { prefix: string; suffix: string; secret: string };
}

export interface PacedOptions {
  port: number;
  ratePerS: number;
  durationMs: number;
  request: PacedTemplate;
  timeoutMs?: number;
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
  /**
   * From the moment each request was sent: what a sender on another machine (GitHub) sees. The
   * generator never waits for an answer before sending, so sending late is its own doing (its
   * timers, the CPU it shares with the server), never the server's.
   */
  sentP50Ms: number | null;
  sentP99Ms: number | null;
  /** How late the generator sent its requests (p99). */
  sendLateP99Ms: number | null;
  /** acks / (time from the first due request to the last answer). */
  acksPerS: number;
  /** Ids of the requests answered 2xx. */
  ackedIds: string[];
}

export function pacedLoad(options: PacedOptions): Promise<PacedResult> {
  const worker = new Worker(new URL('./paced-worker.js', import.meta.url), { workerData: options });
  return new Promise((resolve, reject) => {
    worker.once('message', (result: PacedResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the paced load generator exited (code ${code}) without a result`)));
  });
}
