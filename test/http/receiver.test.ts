import { createHash } from 'node:crypto';
import { httpStatusOf } from '../../src/error-kinds.js';
import { DuetError, InvalidInputError, ShuttingDownError, UnknownAppError } from '../../src/errors.js';
import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { Webhooks } from '@octokit/webhooks';
import { parseConfig, type Config } from '../../src/config/load.js';
import type { SubmitResult, TriggerRequest } from '../../src/pipeline/trigger.js';
import type { DeliveryOutcome } from '../../src/http/delivery.js';
import { webhookRouter } from '../../src/http/receiver.js';
import { freePort } from '../support/ports.js';

type Payload = Record<string, any>;
const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as Array<{ name: string; examples: Payload[] }>;

const SECRET = 'webhook-test-secret';
const REPO = 'inu-appcenter/cafeteria-server';
const COMMIT = '6113728f27ae82c7b1a177c8d03f9e96e0adf246';

function example(event: string, pick: (p: Payload) => boolean = () => true): Payload {
  const found = examples.find((e) => e.name === event)?.examples.find(pick);
  assert.ok(found, `no ${event} example`);
  const copy = structuredClone(found);
  if (copy.repository) copy.repository.full_name = REPO;
  return copy;
}
const tagPush = (tag = 'v2'): Payload => ({ ...example('push', (x) => x.ref.startsWith('refs/tags/') && x.created), ref: `refs/tags/${tag}` });
function release(action: string, edit: (r: Payload) => void = () => {}): Payload {
  const p = example('release', (r) => r.action === action);
  edit(p.release);
  return p;
}

/** Exactly what GitHub sends: "sha256=" + hex HMAC-SHA256 of the body bytes. */
function sign(body: string | Buffer, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function makeConfig(deployOn = '{ branches: [main], tags: ["v*"], releases: true }'): Config {
  const app = `{ repo: Inu-AppCenter/Cafeteria-Server, clone_url: /nonexistent.git, deploy_on: ${deployOn} }`;
  return parseConfig(`state_dir: /tmp/duet-receiver-test\napps:\n  cafeteria: ${app}\n`, 'test.yml');
}

/** The router's own contract with the queue: ids for new deliveries, created:false for a repeat. */
class RecordingQueue {
  readonly requests: TriggerRequest[] = [];
  private readonly byDelivery = new Map<string, string>();
  failWith: Error | undefined;

  async submit(request: TriggerRequest): Promise<SubmitResult> {
    if (this.failWith) throw this.failWith;
    this.requests.push(request);
    const seen = request.deliveryId === null ? undefined : this.byDelivery.get(request.deliveryId);
    if (seen) return { id: seen, created: false, reason: 'same delivery' };
    const id = `deploy-${this.requests.length}`;
    if (request.deliveryId !== null) this.byDelivery.set(request.deliveryId, id);
    return { id, created: true };
  }
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/**
 * A real express app with the router on a free loopback port, closed when the test ends. Its
 * refusals are not held: these tests are about the answers; intake-flood.test.ts about the hold.
 */
async function startReceiver(t: TestContext, config = makeConfig(), secret = SECRET) {
  const [queue, outcomes, rawLogs] = [new RecordingQueue(), [] as DeliveryOutcome[], [] as string[]];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void rawLogs.push(line) });
  const app = express().use(webhookRouter({ config, secret, queue, logger, onDelivery: (o) => outcomes.push(o), refusalHoldMs: 0 }));
  const server = app.listen(await freePort(), '127.0.0.1');
  await once(server, 'listening');
  t.after(() => (server.closeAllConnections(), server.close()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
  const logs = () => rawLogs.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { url, queue, outcomes, rawLogs, logs };
}

let deliveries = 0;
type SendOptions = { body?: string | Buffer; signature?: string | null; contentType?: string; delivery?: string | null };

/** POST like GitHub: JSON of the payload, signed, with event and delivery headers. */
async function deliver(r: Receiver, event: string | null, payload: unknown, options: SendOptions = {}) {
  const body = options.body ?? JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json', 'user-agent': 'GitHub-Hookshot/test' };
  const delivery = options.delivery === undefined ? `72d3162e-cc78-11e3-81ab-4c9367dc${String(++deliveries).padStart(4, '0')}` : options.delivery;
  const signature = options.signature === undefined ? sign(body) : options.signature;
  if (event !== null) headers['x-github-event'] = event;
  if (delivery !== null) headers['x-github-delivery'] = delivery;
  if (signature !== null) headers['x-hub-signature-256'] = signature;
  // Buffer is not a BodyInit in these typings; a Uint8Array copy is.
  const sent = typeof body === 'string' ? body : new Uint8Array(body);
  const response = await fetch(r.url, { method: 'POST', headers, body: sent });
  assert.match(response.headers.get('content-type') ?? '', /application\/json/);
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

test("GitHub's test vector: @octokit/webhooks accepts it, and so does the router's streamed HMAC", async (t) => {
  const vector = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
  assert.equal(sign('Hello, World!', "It's a Secret to Everybody"), vector);
  assert.equal(await new Webhooks({ secret: "It's a Secret to Everybody" }).verify('Hello, World!', vector), true);
  // Through the router: the signature passes, so the answer is about the JSON, not a 401.
  const r = await startReceiver(t, makeConfig(), "It's a Secret to Everybody");
  const { status, json } = await deliver(r, 'ping', null, { body: 'Hello, World!', signature: vector });
  assert.match(`${status} ${String(json.error)}`, /^400 the body is not valid JSON/);
});

test('a pushed tag is queued with app, full ref, head commit and delivery id', async (t) => {
  const r = await startReceiver(t);
  const body = JSON.stringify(tagPush('v2'));
  const { status, json } = await deliver(r, 'push', tagPush('v2'), { delivery: 'aaaa-1' });
  assert.deepEqual([status, json], [202, { deploy: 'deploy-1' }]);
  // The digest of the exact signed bytes: an old body under a new delivery id is the same delivery.
  const bodyDigest = createHash('sha256').update(body).digest('hex');
  assert.deepEqual(r.queue.requests, [
    {
      app: 'cafeteria',
      kind: 'deploy',
      ref: 'refs/tags/v2',
      sha: COMMIT,
      fromSha: null,
      source: 'push',
      deliveryId: 'aaaa-1',
      bodyDigest,
      requestedBy: 'push by Codertocat',
    },
  ]);
  assert.deepEqual(r.outcomes, ['accepted']);
  const logs = r.logs();
  assert.equal(logs.length, 1); // one line per delivery
  const { event, delivery, outcome, app, ref, ms } = logs[0]!;
  assert.deepEqual({ event, delivery, outcome, app, ref }, { event: 'push', delivery: 'aaaa-1', outcome: 'accepted', app: 'cafeteria', ref: 'refs/tags/v2' });
  assert.equal(typeof ms, 'number');
});

test('a redelivery (same X-GitHub-Delivery) answers duplicate with the same id', async (t) => {
  const r = await startReceiver(t);
  const first = await deliver(r, 'push', tagPush(), { delivery: 'bbbb-2' });
  const again = await deliver(r, 'push', tagPush(), { delivery: 'bbbb-2' });
  assert.deepEqual(first.json, { deploy: 'deploy-1' });
  assert.deepEqual([again.status, again.json], [202, { deploy: 'deploy-1', duplicate: true }]);
  assert.deepEqual(r.outcomes, ['accepted', 'duplicate']);
});

test('a wrong or missing signature is 401 and queues nothing; secrets never reach the log', async (t) => {
  const r = await startReceiver(t);
  const body = JSON.stringify(tagPush());
  const wrong = sign(body, 'another secret');
  const cases: Array<[string | null, RegExp]> = [
    [wrong, /does not match/],
    [null, /missing X-Hub-Signature-256/],
    ['', /missing/],
    ['sha256=', /does not match/],
    [sign(`${body} `), /does not match/], // signed a different body
    [sign(body).replace('sha256=', 'sha1='), /does not match/],
  ];
  for (const [signature, message] of cases) {
    const { status, json } = await deliver(r, 'push', null, { body, signature });
    assert.equal(status, 401, String(signature));
    assert.match(String(json.error), message);
  }
  assert.deepEqual(r.queue.requests, []);
  assert.deepEqual(
    r.outcomes,
    cases.map(() => 'unauthorized'),
  );
  assert.equal(r.logs().length, cases.length);
  const all = r.rawLogs.join('');
  assert.ok(!all.includes(SECRET) && !all.includes(wrong.slice(7)) && !all.includes(sign(body).slice(7)));
});

test('a body that is not application/json is 415 with the hint, before anything else', async (t) => {
  const r = await startReceiver(t);
  const payload = JSON.stringify(tagPush());
  for (const [contentType, body] of [
    ['application/x-www-form-urlencoded', `payload=${encodeURIComponent(payload)}`],
    ['text/plain', payload],
  ]) {
    const { status, json } = await deliver(r, 'push', null, { body, contentType });
    assert.equal(status, 415);
    assert.deepEqual(json, { error: "set the webhook's content type to application/json" });
  }
  // A charset parameter is fine.
  assert.equal((await deliver(r, 'push', tagPush(), { contentType: 'application/json; charset=utf-8' })).status, 202);
  assert.equal(r.queue.requests.length, 1);
  assert.deepEqual(r.outcomes, ['unsupported_media_type', 'unsupported_media_type', 'accepted']);
});

test('malformed JSON, a missing event header, a bad payload or an empty body are 400', async (t) => {
  const r = await startReceiver(t);
  const cases: Array<[string | null, unknown, SendOptions, RegExp]> = [
    ['push', null, { body: '{"ref": "refs/tags/v2",' }, /not valid JSON/],
    [null, tagPush(), {}, /^missing X-GitHub-Event$/],
    ['push', { repository: { full_name: REPO } }, {}, /push payload: ref/],
    ['push', null, { body: '', signature: sign('x') }, /empty body/],
    ['push', null, { body: Buffer.from([0x7b, 0xff, 0x7d]) }, /not valid UTF-8/],
    ['push', tagPush(), { delivery: 'x y' }, /X-GitHub-Delivery/],
  ];
  for (const [event, payload, options, message] of cases) {
    const { status, json } = await deliver(r, event, payload, options);
    assert.equal(status, 400, String(message));
    assert.match(String(json.error), message);
  }
  assert.deepEqual(r.queue.requests, []);
  assert.deepEqual(
    r.outcomes,
    cases.map(() => 'bad_request'),
  );
});

/**
 * POST `count` copies of `chunk` with node:http (several times faster than fetch for 26 MB, and no
 * 26 MB buffer): with a declared Content-Length, or chunked when `declare` is false.
 */
function postRepeated(url: string, chunk: Buffer, count: number, declare: boolean): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': sign('x') };
    if (declare) Object.assign(headers, { 'content-length': chunk.length * count });
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (data: string) => (text += data));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    let written = 0;
    const write = (): void => {
      while (written++ < count) if (!req.write(chunk)) return void req.once('drain', write);
      req.end();
    };
    write();
  });
}

test('a body over 25 MB is 413, with or without Content-Length', async (t) => {
  const r = await startReceiver(t);
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  const declared = await postRepeated(r.url, chunk, 26, true);
  assert.deepEqual([declared.status, declared.json], [413, { error: "the body is larger than 25mb, GitHub's own cap" }]);
  // Chunked: the limit is counted while reading, not trusted from a header.
  assert.equal((await postRepeated(r.url, chunk, 26, false)).status, 413);
  // Just under the limit is read (and then fails the signature, which proves it got that far).
  assert.equal((await postRepeated(r.url, chunk, 24, true)).status, 401);
  assert.deepEqual(r.queue.requests, []);
  assert.deepEqual(r.outcomes, ['too_large', 'too_large', 'unauthorized']);
});

test('ping answers pong; issues, pull_request and workflow_run are ignored', async (t) => {
  const r = await startReceiver(t);
  const ping = await deliver(r, 'ping', example('ping'));
  assert.deepEqual([ping.status, ping.json], [200, { pong: true }]);
  for (const event of ['issues', 'pull_request', 'workflow_run']) {
    const { status, json } = await deliver(r, event, example(event));
    assert.equal(status, 202);
    assert.match(String(json.ignored), new RegExp(`"${event}" does not deploy`));
  }
  assert.deepEqual(r.queue.requests, []);
  assert.deepEqual(r.outcomes, ['pong', 'ignored', 'ignored', 'ignored']);
});

test('a published release is queued by tag without a sha; created and draft are ignored', async (t) => {
  const r = await startReceiver(t);
  const published = await deliver(r, 'release', release('published'));
  assert.deepEqual([published.status, published.json], [202, { deploy: 'deploy-1' }]);
  const { ref, sha, source } = r.queue.requests[0]!;
  assert.deepEqual({ ref, sha, source }, { ref: 'refs/tags/0.0.1', sha: null, source: 'release' });
  const draft = await deliver(
    r,
    'release',
    release('created', (rel) => (rel.draft = true)),
  );
  assert.equal(draft.status, 202);
  assert.match(String(draft.json.ignored), /"created" does not deploy/);
  assert.equal(r.queue.requests.length, 1);
});

test('a prerelease is ignored unless deploy_on.prereleases is on', async (t) => {
  const prerelease = () => release('published', (rel) => (rel.prerelease = true));
  const off = await startReceiver(t);
  const ignored = await deliver(off, 'release', prerelease());
  assert.equal(ignored.status, 202);
  assert.match(String(ignored.json.ignored), /prerelease/);
  assert.equal(off.queue.requests.length, 0);
  const on = await startReceiver(t, makeConfig('{ releases: true, prereleases: true }'));
  assert.equal((await deliver(on, 'release', prerelease())).status, 202);
  assert.equal(on.queue.requests[0]!.ref, 'refs/tags/0.0.1');
});

test('a branch outside deploy_on, an unknown repo and a hostile ref are ignored, never queued', async (t) => {
  const r = await startReceiver(t);
  const branch = example('push', (x) => x.ref.startsWith('refs/heads/'));
  branch.ref = 'refs/heads/feature/x';
  branch.created = false;
  const feature = await deliver(r, 'push', branch);
  assert.deepEqual(feature.json, { ignored: 'branch feature/x is not in deploy_on.branches of cafeteria' });
  const elsewhere = tagPush();
  elsewhere.repository.full_name = 'someone/else';
  assert.match(String((await deliver(r, 'push', elsewhere)).json.ignored), /no app .* "someone\/else"/);
  for (const [event, payload] of [
    ['push', tagPush('v1;rm -rf')],
    ['release', release('published', (rel) => (rel.tag_name = 'v1;rm -rf'))],
  ] as const) {
    const { status, json } = await deliver(r, event, payload);
    assert.equal(status, 202);
    assert.match(String(json.ignored), /is not acceptable: it contains a space/);
  }
  assert.deepEqual(r.queue.requests, []);
  assert.deepEqual(r.outcomes, ['ignored', 'ignored', 'ignored', 'ignored']);
});

test('a queue that cannot record the trigger is a 500 with the reason', async (t) => {
  const r = await startReceiver(t);
  r.queue.failWith = new Error('disk full');
  const { status, json } = await deliver(r, 'push', tagPush());
  assert.deepEqual([status, json], [500, { error: 'could not queue the deploy of cafeteria: disk full' }]);
  assert.deepEqual(r.outcomes, ['error']);
  assert.equal(r.logs()[0]!.level, 50); // error
});

test('a queue that is shutting down is a 503 with a hint: GitHub shows the delivery failed, to be redelivered', async (t) => {
  const r = await startReceiver(t);
  r.queue.failWith = new ShuttingDownError();
  const { status, json } = await deliver(r, 'push', tagPush());
  assert.equal(status, 503);
  assert.deepEqual(json, {
    error: 'could not queue the deploy of cafeteria: duet is shutting down',
    hint: 'send it again in a moment: the restarted duet serve takes it',
  });
});

test('a refusal of the queue is answered by its kind, as the API answers it (error-kinds.ts), not as a 500', async (t) => {
  const r = await startReceiver(t);
  const cases: Array<[Error, number]> = [
    [new UnknownAppError('cafeteria'), 404],
    [new InvalidInputError('"v2 " is not a ref', { step: 'resolve', hint: 'name a tag' }), 400],
    [new DuetError('nothing to roll back to', { step: 'pick' }), 409],
    [Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' }), 500],
  ];
  for (const [error, expected] of cases) {
    r.queue.failWith = error;
    const { status, json } = await deliver(r, 'push', tagPush());
    assert.equal(status, expected, error.message);
    assert.equal(status, httpStatusOf(error));
    assert.equal(json.hint, error instanceof DuetError ? error.hint : undefined, 'a refusal that says what to do says it to GitHub too');
  }
});

test('an empty secret is refused when the router is built', () => {
  assert.throws(() => webhookRouter({ config: makeConfig(), secret: '', queue: new RecordingQueue(), logger: pino({ enabled: false }) }));
});
