import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parseConfig } from '../../src/config/load.js';
import { checkDelivery, checkHeaders } from '../../src/http/delivery.js';
import type { SignedBody } from '../../src/http/signed-body.js';

// The decisions alone, without a server: what the router answers is what these return.

const config = parseConfig(
  'state_dir: /tmp/duet-delivery-test\napps:\n  web: { repo: acme/web, clone_url: /nonexistent.git, deploy_on: { branches: [main] } }\n',
  'test.yml',
);
const COMMIT = '6113728f27ae82c7b1a177c8d03f9e96e0adf246';
const headers: IncomingHttpHeaders = {
  'content-type': 'application/json; charset=utf-8',
  'x-hub-signature-256': 'sha256=00',
  'x-github-event': 'push',
  'x-github-delivery': 'd-1',
};

function verified(text: string): SignedBody {
  const body = Buffer.from(text);
  return { ok: true, verified: true, length: body.length, body, digest: createHash('sha256').update(body).digest('hex') };
}

const push = JSON.stringify({
  ref: 'refs/heads/main',
  deleted: false,
  head_commit: { id: COMMIT },
  repository: { full_name: 'acme/web' },
  sender: { login: 'ada' },
});

test('the headers alone refuse a request nobody vouches for, before its body is read', () => {
  assert.equal(checkHeaders(headers), undefined);
  assert.deepEqual(checkHeaders({ ...headers, 'content-type': 'text/plain' })?.status, 415);
  assert.deepEqual(checkHeaders({ ...headers, 'content-encoding': 'gzip' })?.status, 415);
  const unsigned = checkHeaders({ ...headers, 'x-hub-signature-256': undefined });
  assert.deepEqual([unsigned?.status, unsigned?.outcome, unsigned?.untrusted], [401, 'unauthorized', true]);
});

test('a signed push becomes a trigger carrying the digest taken while the body was read', () => {
  const read = verified(push);
  const check = checkDelivery(config, headers, read);
  assert.ok('trigger' in check);
  assert.deepEqual([check.trigger.app, check.trigger.sha, check.trigger.deliveryId], ['web', COMMIT, 'd-1']);
  assert.equal(check.trigger.bodyDigest, read.ok && read.verified ? read.digest : undefined);
});

test('each refusal carries its status; those before the signature is known are untrusted', () => {
  const answer = (read: SignedBody, h = headers) => {
    const check = checkDelivery(config, h, read);
    assert.ok(!('trigger' in check) && !('wake' in check));
    return [check.status, check.outcome, check.untrusted ?? false, check.retryAfterS];
  };
  assert.deepEqual(answer({ ok: false, refusal: { status: 503, reason: 'busy' } }), [503, 'busy', true, 5]);
  assert.deepEqual(answer({ ok: false, refusal: { status: 413, reason: 'too_large' } }), [413, 'too_large', true, undefined]);
  assert.deepEqual(answer({ ok: true, verified: false, length: 10 }), [401, 'unauthorized', true, undefined]);
  assert.deepEqual(answer({ ok: true, verified: false, length: 0 }), [400, 'bad_request', true, undefined]);
  assert.deepEqual(answer(verified('{')), [400, 'bad_request', false, undefined]);
  assert.deepEqual(answer(verified(push), { ...headers, 'x-github-event': undefined }), [400, 'bad_request', false, undefined]);
  assert.deepEqual(answer(verified('{}'), { ...headers, 'x-github-event': 'ping' }), [200, 'pong', false, undefined]);
  assert.deepEqual(answer(verified(push.replace('refs/heads/main', 'refs/heads/dev'))).slice(0, 2), [202, 'ignored']);
});
