import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { signDeliveries, startWrk, writeLuaScripts } from '../../bench/lib/wrk.js';
import { uniqueBodies } from '../../bench/scenarios/webhook-deliveries.js';
import { pollUntil } from '../../src/util/poll.js';
import { requireBinary } from '../setup/helpers.js';
import { tempDir } from '../support/tmp.js';

const SECRET = "It's a Secret to Everybody";

/**
 * The intake benchmark's wrk script sends bodies node signed beforehand: every body must verify
 * with node's HMAC, carry its delivery id and differ from every other, and a run that outlasts
 * its signed deliveries must say so (it would send a body again: a duplicate, not intake).
 */
test('the webhook wrk script: each signed delivery once, with a valid X-Hub-Signature-256; running out is counted', async (t) => {
  if (!requireBinary(t, 'wrk', 'wrk')) return;
  const dir = await tempDir(t, 'duet-wrk-sign');
  const seen = new Set<string>();
  const invalid: string[] = [];
  const again: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const expected = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
      const id = String(req.headers['x-github-delivery']);
      const inBody = (JSON.parse(body.toString('utf8')) as { bench_delivery?: string }).bench_delivery;
      if (req.headers['x-hub-signature-256'] !== expected || inBody !== id) invalid.push(`${id} (${body.length} bytes)`);
      if (seen.has(id)) again.push(id);
      seen.add(id);
      res.statusCode = 202;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { webhook } = await writeLuaScripts(dir);
  const port = (server.address() as AddressInfo).port;
  // Multi-byte characters: the body is bytes, as the signature is.
  const bodies = uniqueBodies({ ref: 'refs/heads/main', name: 'café ünï', padding: 'x'.repeat(7000) });
  const signed = join(dir, 'signed');
  await signDeliveries(signed, { ...bodies, secret: SECRET, idPrefix: 'd', count: 300 });
  const threads = 2;
  const wrk = startWrk({
    url: `http://127.0.0.1:${port}/webhook`,
    script: webhook,
    threads,
    connections: 2,
    env: { BENCH_BODY_PREFIX: bodies.prefix, BENCH_BODY_SUFFIX: bodies.suffix, BENCH_SIGNED: signed, BENCH_PATH: '/webhook', BENCH_THREADS: String(threads) },
  });
  // Past the 300 signed ones: what it sends then is a body again, counted as exhausted. A wrk
  // that exits (broken, or a script error) or stalls fails here with what it said.
  let exited: string | undefined;
  void wrk.done().then(
    () => (exited = 'wrk exited on its own'),
    (error: Error) => (exited = error.message),
  );
  const past = await pollUntil(async () => (again.length > 0 ? true : exited !== undefined ? false : undefined), { timeoutMs: 20_000, maxIntervalMs: 50 });
  if (!past) assert.fail(`wrk never ran out within 20 s: ${seen.size} deliveries; ${exited ?? 'none came'}`);
  const result = await wrk.stop();
  // wrk may build a connection's first request twice and send the second: one unsent per thread.
  assert.ok(seen.size >= 300 - threads, `${seen.size} of the 300 signed deliveries were sent`);
  assert.deepEqual(invalid, [], 'bodies that do not verify');
  assert.ok(result.exhausted > 0, `the run says it ran out: ${JSON.stringify(result.counts)}, exhausted ${result.exhausted}`);
});
