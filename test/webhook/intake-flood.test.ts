import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { SERVE_NODE_FLAGS } from '../../src/setup/layout.js';
import { BodyBudget } from '../../src/webhook/signed-body.js';
import { webhookRouter } from '../../src/webhook/receiver.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { floodPost, rssMb, whileSampling, type FloodAnswer } from '../support/flood.js';
import { freePort } from '../support/ports.js';
import { examples, postWebhook, sign, startServe } from '../support/serve.js';

/**
 * The audit's attack on a real `duet serve` (run with the unit's node flags): 120 parallel 25 MB
 * POSTs to /webhook. Unsigned ones must be refused before their body is read; ones with a wrong
 * signature may be read only within a fixed budget. Numbers go to stderr for the report.
 */

const MB = 1024 * 1024;
const PARALLEL = 120;

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

test('120 parallel 25 MB POSTs with a wrong signature: bounded memory, 503 + Retry-After past the budget, memory returned, GitHub still served', async (t) => {
  const { serve, pid, baseline } = await servedDuet(t);
  const body = { bytes: 25 * MB, headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign('something else') } };
  const flood = () => Promise.all(Array.from({ length: PARALLEL }, (_, i) => floodPost(`${serve.url}/webhook`, { ...body, declare: i % 2 === 0 })));
  const { result, peakRssMb, healthzMs } = await whileSampling(pid, serve.url, flood);
  const worst = Math.max(...healthzMs);
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
    healthzMaxMs: worst,
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
  assert.ok(healthzMs.length > 0 && worst < 5000, `/healthz took ${worst} ms during the flood`);
  assert.ok(settled !== undefined, `RSS stayed at ${await rssMb(pid)} MB after the flood (baseline ${baseline} MB)`);

  // The budget is free again: GitHub's own ping, signed as GitHub signs it, is answered.
  const ping = await postWebhook(serve.url, 'ping', examples('ping')[0], 'delivery-after-flood');
  assert.equal(ping.status, 200);
});

test('the budget is charged from Content-Length before a byte is read: stalled bodies make a third 503, a small signed ping still fits', async (t) => {
  const { serve } = await servedDuet(t);
  const url = `${serve.url}/webhook`;
  const wrong = { 'x-github-event': 'push', 'x-hub-signature-256': sign('something else') };
  // No signature: answered from the headers, although the promised body never comes.
  assert.equal((await floodPost(url, { bytes: MB, headers: { 'x-github-event': 'push' }, stallAfter: 0 })).status, 401);
  // Two 25 MB bodies that stop after 1 MB hold 50 of the 64 MB until they end.
  const stalled = [floodPost(url, { bytes: 25 * MB, headers: wrong, stallAfter: MB }), floodPost(url, { bytes: 25 * MB, headers: wrong, stallAfter: MB })];
  const third = await pollUntil(
    async () => {
      const answer = await floodPost(url, { bytes: 25 * MB, headers: wrong, stallAfter: 0 });
      return answer.status === 503 ? answer : undefined;
    },
    { timeoutMs: 5000 },
  );
  assert.deepEqual(third, { status: 503, retryAfter: '5' });
  const ping = await postWebhook(serve.url, 'ping', examples('ping')[0], 'delivery-beside-stalled');
  assert.equal(ping.status, 200);
  await serve.stop();
  assert.deepEqual(await Promise.all(stalled), [{ status: 'reset' }, { status: 'reset' }]);
});

test('a body slower than the deadline is 408 and gives its share of the budget back', async (t) => {
  const budget = new BodyBudget(2 * MB);
  const config = parseConfig('state_dir: /tmp/duet-flood-test\napps:\n  a: { clone_url: /nonexistent.git }\n', 'test.yml');
  const queue = { submit: async () => ({ id: 'x', created: true }) };
  const app = express().use(webhookRouter({ config, secret: 's', queue, logger: pino({ enabled: false }), budget, bodyDeadlineMs: 200 }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => (server.closeAllConnections(), server.close()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
  const slow = await floodPost(url, { bytes: MB, headers: { 'x-hub-signature-256': sign('x') }, stallAfter: 1024 });
  assert.deepEqual(slow, { status: 408, retryAfter: undefined });
  assert.equal(budget.inUse, 0);
});
