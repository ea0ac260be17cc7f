import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startWrk, writeLuaScripts } from '../../bench/lib/wrk.js';
import { uniqueBodies } from '../../bench/scenarios/webhook-deliveries.js';
import { pollUntil } from '../../src/util/poll.js';
import { requireBinary } from '../setup/helpers.js';

const SECRET = "It's a Secret to Everybody";

/**
 * The intake benchmark's wrk script signs each body itself (SHA-256 written out in Lua, from a
 * midstate): every body it sends must verify with node's HMAC, carry its delivery id, and differ
 * from every other. Bodies of several lengths put the fixed part's end on and around a block
 * boundary, and the growing counter carries the signed tail across one.
 */
test('the webhook wrk script: every request is a distinct body with a valid X-Hub-Signature-256', async (t) => {
  if (!requireBinary(t, 'wrk', 'wrk')) return;
  const dir = await mkdtemp(join(tmpdir(), 'duet-wrk-sign-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const seen = new Set<string>();
  const bad: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const expected = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
      const id = String(req.headers['x-github-delivery']);
      const inBody = (JSON.parse(body.toString('utf8')) as { bench_delivery?: string }).bench_delivery;
      if (req.headers['x-hub-signature-256'] !== expected || inBody !== id || seen.has(id)) bad.push(`${id} (${body.length} bytes)`);
      seen.add(id);
      res.statusCode = 202;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { webhook } = await writeLuaScripts(dir);
  const port = (server.address() as AddressInfo).port;
  for (const padding of [0, 9, 40, 41, 47, 100, 7000]) {
    // Multi-byte characters: the script must count bytes, as the signature does.
    const bodies = uniqueBodies({ ref: 'refs/heads/main', name: 'café ünï', padding: 'x'.repeat(padding) });
    const before = seen.size;
    const wrk = startWrk({
      url: `http://127.0.0.1:${port}/webhook`,
      script: webhook,
      threads: 1,
      connections: 2,
      env: {
        BENCH_BODY_PREFIX: bodies.prefix,
        BENCH_BODY_SUFFIX: bodies.suffix,
        BENCH_SECRET: SECRET,
        BENCH_DELIVERY_PREFIX: `p${padding}`,
        BENCH_PATH: '/webhook',
      },
    });
    // Past 100 requests the counter has three digits: the tail crosses lengths it did not before.
    // A wrk that exits (broken, or a script error) or stalls fails here with what it said.
    let exited: string | undefined;
    void wrk.done().then(
      () => (exited = 'wrk exited on its own'),
      (error: Error) => (exited = error.message),
    );
    const enough = await pollUntil(async () => (seen.size - before >= 150 ? true : exited !== undefined ? false : undefined), {
      timeoutMs: 30_000,
      maxIntervalMs: 50,
    });
    if (!enough) {
      const why =
        exited ??
        (await wrk.stop().then(
          () => 'none came for 30 s',
          (error: Error) => `none came for 30 s: ${error.message}`,
        ));
      assert.fail(`padding ${padding}: ${seen.size - before} of 150 requests; ${why}`);
    }
    const result = await wrk.stop();
    assert.deepEqual(bad, [], `padding ${padding}: bodies that do not verify`);
    assert.ok((result.counts['202'] ?? 0) >= 150, `padding ${padding}: ${JSON.stringify(result.counts)}`);
  }
});
