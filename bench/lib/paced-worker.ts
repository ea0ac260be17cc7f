import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import type { PacedOptions, PacedResult } from './paced-load.js';
import { percentile } from './stats.js';

/** The paced load generator's thread (see paced-load.ts): runs one load, posts its result. */

async function run(options: PacedOptions): Promise<PacedResult> {
  const { request: template } = options;
  // Structured cloning hands the body over as a plain Uint8Array.
  const fixedBody = Buffer.from(template.body);
  const signed = template.signedPerRequest;
  // Signing takes ~10 µs per body, on this thread: not counted in the server's time.
  const requestOf = (id: string): { body: Buffer; headers: Record<string, string> } => {
    const body = signed ? Buffer.from(`${signed.prefix}${id}${signed.suffix}`) : fixedBody;
    const headers: Record<string, string> = { ...template.headers, [template.idHeader]: id, 'content-length': String(body.length) };
    if (signed) headers['x-hub-signature-256'] = `sha256=${createHmac('sha256', signed.secret).update(body).digest('hex')}`;
    return { body, headers };
  };
  const total = Math.max(1, Math.round((options.ratePerS * options.durationMs) / 1000));
  const interval = 1000 / options.ratePerS;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const latencies: number[] = [];
  const fromSend: number[] = [];
  const sendLate: number[] = [];
  const statuses: Record<string, number> = {};
  const ackedIds: string[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let lastAnswer = 0;
  const inFlight: Promise<void>[] = [];

  const send = (index: number, dueAt: number): Promise<void> => {
    const sentAt = performance.now();
    sendLate.push(sentAt - dueAt);
    const id = `${template.idPrefix}-${index}`;
    const { body, headers } = requestOf(id);
    return new Promise<void>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: options.port,
          method: template.method,
          path: template.path,
          agent,
          headers,
          timeout: options.timeoutMs ?? 10_000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const at = performance.now();
            lastAnswer = Math.max(lastAnswer, at);
            latencies.push(at - dueAt);
            fromSend.push(at - sentAt);
            const status = res.statusCode ?? 0;
            statuses[status] = (statuses[status] ?? 0) + 1;
            if (status >= 200 && status < 300) ackedIds.push(id);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => {
        errors += 1;
        firstError ??= error.message;
        lastAnswer = Math.max(lastAnswer, performance.now());
        resolve();
      });
      req.end(body);
    });
  };

  const start = performance.now();
  let next = 0;
  while (next < total) {
    const t = performance.now();
    while (next < total && start + next * interval <= t) {
      inFlight.push(send(next, start + next * interval));
      next += 1;
    }
    if (next < total) {
      const wait = start + next * interval - performance.now();
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
    sentP50Ms: percentile(fromSend, 50),
    sentP99Ms: percentile(fromSend, 99),
    sendLateP99Ms: percentile(sendLate, 99),
    acksPerS: acks / spanS,
    ackedIds,
  };
}

parentPort!.postMessage(await run(workerData as PacedOptions));
