import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { SERVE_NODE_FLAGS } from '../../src/setup/layout.js';
import { BodyBudget } from '../../src/http/signed-body.js';
import { webhookRouter } from '../../src/http/receiver.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { floodPost, percentile, rssMb, sustainedFlood, whileSampling, type FloodAnswer } from '../support/flood.js';
import { freePort } from '../support/ports.js';
import { examples, postWebhook, sign, startServe } from '../support/serve.js';

/**
 * The audit's attack on a real `duet serve` (run with the unit's node flags): 120 parallel 25 MB
 * POSTs to /webhook. Unsigned ones must be refused before their body is read; ones with a wrong
 * signature may be read only within a fixed budget; and meanwhile /healthz answers a new
 * connection in a fraction of a second. Numbers go to stderr for the report.
 */

const MB = 1024 * 1024;
const PARALLEL = 120;
const FLOOD_S = 5;
/** A refusal nobody vouches for is sent after 1 to 3 s (src/http/refusal-hold.ts): the promise, not its constant. */
const HOLD_MS = { least: 1000, most: 3000 };

async function servedDuet(t: import('node:test').TestContext) {
  const port = await freePort();
  const setup = await setupDuet(t, { top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  // As duet.service runs it: the node flags, and glibc's mmap threshold from its Environment=.
  const serve = await startServe(t, setup.configPath, port, { MALLOC_MMAP_THRESHOLD_: '65536' }, SERVE_NODE_FLAGS);
  const pid = serve.child.pid!;
  // Settled: the collection serve runs once started has happened (the log line comes before it).
  const baseline = await pollUntil(
    async () => {
      const [a, b] = [await rssMb(pid), await rssMb(pid)];
      return Math.abs(a - b) <= 1 ? b : undefined;
    },
    { timeoutMs: 5000 },
  );
  assert.ok(baseline);
  return { serve, pid, baseline };
}

function tally(answers: FloodAnswer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) counts[String(a.status)] = (counts[String(a.status)] ?? 0) + 1;
  return counts;
}

function report(name: string, numbers: Record<string, unknown>): void {
  process.stderr.write(`intake-flood ${name}: ${JSON.stringify(numbers)}\n`);
}

test('120 parallel unsigned 25 MB POSTs are refused from their headers: memory and /healthz stay flat', async (t) => {
  const { serve, pid, baseline } = await servedDuet(t);
  const flood = () =>
    Promise.all(Array.from({ length: PARALLEL }, () => floodPost(`${serve.url}/webhook`, { bytes: 25 * MB, headers: { 'x-github-event': 'push' } })));
  const { result, peakRssMb, healthzMs } = await whileSampling(pid, serve.url, flood);
  const worst = Math.max(...healthzMs);
  report('unsigned', { baselineMb: baseline, peakRssMb, healthzMaxMs: worst, healthzCount: healthzMs.length, answers: tally(result) });
  assert.ok(
    result.every((a) => a.status === 401 || a.status === 'reset'),
    JSON.stringify(tally(result)),
  );
  assert.ok(result.some((a) => a.status === 401));
  // Bounds an unbounded reader misses by far (it reached 2.7 GB); the figures themselves are
  // reported, not asserted: npm test shares two cores with whatever else runs.
  assert.ok(peakRssMb - baseline < 100, `RSS grew from ${baseline} to ${peakRssMb} MB`);
  assert.ok(healthzMs.length > 0 && worst < 5000, `/healthz took ${worst} ms`);
});

test('120 connections sending 25 MB bodies with a wrong signature for 5 s: /healthz p99 under 500 ms on new connections, bounded memory, 503 + Retry-After past the budget, memory returned, GitHub still served', async (t) => {
  const { serve, pid, baseline } = await servedDuet(t);
  const flood = () =>
    sustainedFlood({
      url: `${serve.url}/webhook`,
      parallel: PARALLEL,
      seconds: FLOOD_S,
      bytes: 25 * MB,
      headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign('something else') },
    });
  const { result, peakRssMb, healthzMs } = await whileSampling(pid, serve.url, flood);
  const p99 = percentile(healthzMs, 0.99);
  const settled = await pollUntil(
    async () => {
      const now = await rssMb(pid);
      return now - baseline < 100 ? now : undefined;
    },
    { timeoutMs: 20_000, maxIntervalMs: 250 },
  );
  report('wrongly signed', {
    baselineMb: baseline,
    peakRssMb,
    afterMb: settled ?? (await rssMb(pid)),
    healthzP50Ms: percentile(healthzMs, 0.5),
    healthzP99Ms: p99,
    healthzMaxMs: Math.max(...healthzMs),
    healthzCount: healthzMs.length,
    answers: tally(result),
  });

  const counts = tally(result);
  assert.ok((counts['503'] ?? 0) + (counts.reset ?? 0) > 0, JSON.stringify(counts));
  assert.ok(
    result.every((a) => a.status === 401 || a.status === 503 || a.status === 'reset'),
    JSON.stringify(counts),
  );
  assert.ok(
    result.filter((a) => a.status === 503).every((a) => a.status === 503 && Number(a.retryAfter) > 0),
    'every 503 says when to retry',
  );
  assert.ok(peakRssMb - baseline < 250, `RSS grew from ${baseline} to ${peakRssMb} MB`);
  // Before the refusals were held and the reads bounded, a new connection queued behind the
  // flood's: p99 1.1 to 3 s (max 9 s). Now 20 to 70 ms on a quiet 2-core machine; with other
  // work on it (load 9), the flood's first 120 connections, each taking a turn to be held, make
  // it 150 to 380 ms.
  assert.ok(healthzMs.length >= FLOOD_S * 20, `${healthzMs.length} probes`);
  assert.ok(p99 < 500, `/healthz p99 ${p99} ms during the flood`);
  assert.ok(settled !== undefined, `RSS stayed at ${await rssMb(pid)} MB after the flood (baseline ${baseline} MB)`);
  // Hundreds of rejections, ten lines a 10 s window: the flood does not write to the journal.
  const rejectedLines = serve
    .output()
    .split('\n')
    .filter((line) => line.includes('"msg":"webhook delivery rejected"')).length;
  assert.ok(rejectedLines <= 30, `${rejectedLines} lines for ${result.length} rejections`);

  // The budget is free again: GitHub's own ping, signed as GitHub signs it, is answered.
  const ping = await postWebhook(serve.url, 'ping', examples('ping')[0], 'delivery-after-flood');
  assert.equal(ping.status, 200);
});

test('the budget is charged from Content-Length before a byte is read: stalled bodies make a third 503, a small signed ping still fits', async (t) => {
  const { serve } = await servedDuet(t);
  const url = `${serve.url}/webhook`;
  const wrong = { 'x-github-event': 'push', 'x-hub-signature-256': sign('something else') };
  // No signature: answered from the headers, although the promised body never comes, after the
  // hold that keeps a flood of such requests from queueing in front of other connections.
  const asked = performance.now();
  assert.equal((await floodPost(url, { bytes: MB, headers: { 'x-github-event': 'push' }, stallAfter: 0 })).status, 401);
  assert.ok(performance.now() - asked >= HOLD_MS.least, 'the refusal was held');
  // Two 25 MB bodies that stop after 1 MB hold 50 of the 64 MB until they end.
  const stalled = [floodPost(url, { bytes: 25 * MB, headers: wrong, stallAfter: MB }), floodPost(url, { bytes: 25 * MB, headers: wrong, stallAfter: MB })];
  const third = await pollUntil(
    async () => {
      const answer = await floodPost(url, { bytes: 25 * MB, headers: wrong, stallAfter: 0 });
      return answer.status === 503 ? answer : undefined;
    },
    { timeoutMs: 10_000 },
  );
  assert.deepEqual(third, { status: 503, retryAfter: '5' });
  const ping = await postWebhook(serve.url, 'ping', examples('ping')[0], 'delivery-beside-stalled');
  assert.equal(ping.status, 200);
  await serve.stop();
  assert.deepEqual(await Promise.all(stalled), [{ status: 'reset' }, { status: 'reset' }]);
});

test('duet serve answers a signed body still unfinished after 20 s with 408, not before (GitHub gives up after 10 s)', async (t) => {
  const { serve } = await servedDuet(t);
  // The manual's figure (docs/serve.md), not BODY_DEADLINE_MS: a changed constant must fail here.
  const deadlineMs = 20_000;
  const bound = deadlineMs + HOLD_MS.most + 10_000;
  const asked = performance.now();
  const answer = floodPost(`${serve.url}/webhook`, { bytes: MB, headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign('x') }, stallAfter: 1024 });
  const slow = await Promise.race([answer, new Promise<undefined>((resolve) => setTimeout(resolve, bound, undefined).unref())]);
  const ms = Math.round(performance.now() - asked);
  report('slow body', { ms });
  assert.deepEqual(slow, { status: 408, retryAfter: undefined }, `the answer within ${bound} ms`);
  assert.ok(ms >= deadlineMs, `408 after ${ms} ms, before the deadline`);
});

test('a body slower than the deadline is 408 and gives its share of the budget back', async (t) => {
  const budget = new BodyBudget({ bytes: 2 * MB, bodies: 3, bytesPerTurn: 64 * 1024 });
  const config = parseConfig('state_dir: /tmp/duet-flood-test\napps:\n  a: { clone_url: /nonexistent.git }\n', 'test.yml');
  const queue = { submit: async () => ({ id: 'x', created: true }) };
  const app = express().use(webhookRouter({ config, secret: 's', queue, logger: pino({ enabled: false }), budget, bodyDeadlineMs: 200 }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => (server.closeAllConnections(), server.close()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
  const slow = await floodPost(url, { bytes: MB, headers: { 'x-hub-signature-256': sign('x') }, stallAfter: 1024 });
  assert.deepEqual(slow, { status: 408, retryAfter: undefined });
  assert.deepEqual(budget.inUse, { bytes: 0, bodies: 0 });
});
