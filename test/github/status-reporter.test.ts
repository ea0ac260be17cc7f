import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { OTHER_SHA, rig, SHA, STATUS_PATH, TOKEN, trigger } from './helpers.js';

const started = { state: 'running', startedAt: '2024-05-01T10:00:01.000Z', color: 'green' } as const;

test('queued, started and finished post pending, pending, success in order on the resolved commit', async (t) => {
  const { github, reporter, log } = await rig(t, { publicUrl: 'https://duet.example.com/' });
  // Slow answers: a report must wait for the one before it, never overtake it.
  github.respond('POST', STATUS_PATH, { status: 201, body: {}, delayMs: 40 }, { status: 201, body: {}, delayMs: 20 });

  assert.equal(reporter.queued(trigger()), undefined);
  assert.equal(github.requests.length, 0, 'the observer only enqueues; delivery happens later');
  // Each next state comes while the one before is in flight (as a deploy's do, seconds apart).
  await github.waitFor((requests) => requests.length === 1);
  assert.equal(reporter.started(trigger(started), 'green'), undefined);
  await github.waitFor((requests) => requests.length === 2);
  assert.equal(reporter.finished(trigger({ ...started, state: 'succeeded', summary: 'Live on green in 8.2s' })), undefined);

  await reporter.flush();
  const statuses = github.matching(STATUS_PATH, 'POST');
  assert.deepEqual(
    statuses.map((request) => request.body),
    [
      { state: 'pending', description: 'Queued' },
      { state: 'pending', description: 'Deploying v2 to green' },
      { state: 'success', description: 'Live on green in 8.2s' },
    ].map((fields) => ({ ...fields, context: 'duet/cafeteria', target_url: 'https://duet.example.com/deploys/d-0001' })),
  );
  assert.equal(github.maxInFlight(STATUS_PATH), 1, 'one request at a time per commit and context');
  for (const request of statuses) {
    assert.match(String(request.headers.authorization), new RegExp(`^(token|bearer) ${TOKEN}$`, 'i'));
    assert.match(String(request.headers['user-agent']), /^duet-test /);
  }
  assert.doesNotMatch(log.text(), new RegExp(TOKEN), 'the token is never logged');
});

test('a custom status_context names the app; without public_url there is no target_url', async (t) => {
  const { github, reporter } = await rig(t, { context: 'deploy/{app}/prod' });
  reporter.queued(trigger({ ref: SHA }));
  reporter.started(trigger({ ...started, ref: 'main', kind: 'rollback' }), null);
  await reporter.flush();
  assert.deepEqual(
    github.matching(STATUS_PATH).map((request) => request.body),
    [
      { state: 'pending', description: 'Queued', context: 'deploy/cafeteria/prod' },
      { state: 'pending', description: 'Rolling back to main', context: 'deploy/cafeteria/prod' },
    ],
  );
});

test('the GitHub Enterprise path prefix is kept', async (t) => {
  const { github, reporter } = await rig(t, { prefix: '/api/v3' });
  reporter.queued(trigger());
  await reporter.flush();
  assert.deepEqual(
    github.requests.map((request) => `${request.method} ${request.url}`),
    [`POST /api/v3/repos/inu-appcenter/cafeteria-server/statuses/${SHA}`],
  );
});

test('a description over 140 characters is cut with an ellipsis', async (t) => {
  const { github, reporter } = await rig(t);
  reporter.finished(trigger({ state: 'failed', summary: `build failed: ${'npm ERR! '.repeat(40)}` }));
  await reporter.flush();
  const [request] = github.matching(STATUS_PATH);
  const description = (request!.body as { description: string }).description;
  assert.equal(description.length, 140);
  assert.ok(description.startsWith('build failed: npm ERR!'));
  assert.ok(description.endsWith('…'));

  // Never cut through an emoji, whichever way GitHub counts characters.
  for (const summary of ['🚀'.repeat(200), 'x'.repeat(140)]) {
    reporter.finished(trigger({ state: 'failed', summary }));
    await reporter.flush();
  }
  const [emoji, exact] = github
    .matching(STATUS_PATH)
    .slice(1)
    .map((sent) => (sent.body as { description: string }).description);
  assert.ok(emoji!.length <= 140 && Array.from(emoji!).length <= 140);
  assert.doesNotMatch(emoji!, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/, 'no lone surrogate');
  assert.equal(exact, 'x'.repeat(140), 'exactly 140 is left alone');
});

test('failed maps to failure, superseded and internal errors to error', async (t) => {
  const { github, reporter } = await rig(t);
  // One at a time: reports of one commit that wait together are sent as the newest only.
  for (const finished of [
    trigger({ state: 'failed', summary: 'health failed: GET /health answered 503' }),
    trigger({ id: 'd-0002', state: 'superseded', supersededBy: 'd-0003', resolvedSha: OTHER_SHA }),
    trigger({ id: 'd-0004', state: 'superseded', summary: 'Superseded by ffeeddc', resolvedSha: OTHER_SHA }),
    trigger({ id: 'd-0005', state: 'errored', summary: 'internal error: EACCES', resolvedSha: OTHER_SHA }),
  ]) {
    reporter.finished(finished);
    await reporter.flush();
  }
  const bodies = github.requests.map((request) => [request.path, request.body]);
  assert.deepEqual(bodies, [
    [
      `/repos/inu-appcenter/cafeteria-server/statuses/${SHA}`,
      { state: 'failure', description: 'health failed: GET /health answered 503', context: 'duet/cafeteria' },
    ],
    [`/repos/inu-appcenter/cafeteria-server/statuses/${OTHER_SHA}`, { state: 'error', description: 'Superseded by d-0003', context: 'duet/cafeteria' }],
    [`/repos/inu-appcenter/cafeteria-server/statuses/${OTHER_SHA}`, { state: 'error', description: 'Superseded by ffeeddc', context: 'duet/cafeteria' }],
    [`/repos/inu-appcenter/cafeteria-server/statuses/${OTHER_SHA}`, { state: 'error', description: 'internal error: EACCES', context: 'duet/cafeteria' }],
  ]);
});

test('a 500 and a dropped connection are retried in the background until delivered', async (t) => {
  const { github, reporter, log } = await rig(t);
  github.respond('POST', STATUS_PATH, 500, 'reset');
  reporter.queued(trigger());
  await reporter.flush(5000);
  const statuses = github.matching(STATUS_PATH);
  assert.equal(statuses.length, 3);
  assert.deepEqual(statuses[2]!.body, statuses[0]!.body, 'the same report, sent again');
  const warnings = log.lines.filter((line) => line.level === 40);
  assert.equal(warnings.length, 2);
  assert.equal(warnings[0]!.status, 500);
  assert.match(warnings[0]!.msg, /retrying/);
});

test('a rate-limited 403 is retried, not dropped', async (t) => {
  const { github, reporter } = await rig(t);
  github.respond('POST', STATUS_PATH, {
    status: 403,
    body: { message: 'API rate limit exceeded for installation ID 1.' },
    headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000)) },
  });
  reporter.queued(trigger());
  await reporter.flush(5000);
  assert.equal(github.matching(STATUS_PATH).length, 2);
});

test("a 422 is not retried: GitHub's message is logged and later reports still go out", async (t) => {
  const { github, reporter, log } = await rig(t);
  github.respond('POST', STATUS_PATH, {
    status: 422,
    body: {
      message: 'Validation Failed',
      errors: [{ resource: 'Status', code: 'custom', field: 'context', message: 'context is too long' }],
      documentation_url: 'https://docs.github.com/rest/commits/statuses',
    },
  });
  reporter.queued(trigger());
  reporter.started(trigger(started), 'green');
  await reporter.flush(5000);
  assert.deepEqual(
    github.matching(STATUS_PATH).map((request) => (request.body as { description: string }).description),
    ['Queued', 'Deploying v2 to green'],
    'the rejected report is sent once, the next one is not held up by it',
  );
  const errors = log.lines.filter((line) => line.level === 50);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.status, 422);
  assert.match(errors[0]!.msg, /HTTP 422.*Validation Failed: context is too long.*not retrying/);
});

test('401 (bad token) and 404 (repository not visible to the token) are logged and dropped', async (t) => {
  const { github, reporter, log } = await rig(t);
  github.respond('POST', STATUS_PATH, 401, 404);
  reporter.queued(trigger());
  reporter.finished(trigger({ id: 'd-0002', state: 'succeeded', color: 'blue' }));
  await reporter.flush(5000);
  assert.equal(github.matching(STATUS_PATH).length, 2);
  const messages = log.lines.filter((line) => line.level === 50).map((line) => line.msg);
  assert.equal(messages.length, 2);
  assert.match(messages[0]!, /HTTP 401.*Bad credentials/);
  assert.match(messages[1]!, /HTTP 404.*Not Found/);
  assert.doesNotMatch(log.text(), new RegExp(TOKEN));
});

test('a trigger without a resolved commit, or of an app without a repo, is skipped with a log line', async (t) => {
  const { github, reporter, log } = await rig(t);
  reporter.queued(trigger({ resolvedSha: null, sha: null }));
  reporter.queued(trigger({ id: 'd-0002', app: 'no-repo' }));
  await reporter.flush();
  assert.equal(github.requests.length, 0);
  assert.ok(log.lines.some((line) => line.trigger === 'd-0001' && /no commit is known/.test(line.msg)));
  assert.ok(log.lines.some((line) => line.trigger === 'd-0002' && /has no repo/.test(line.msg)));
});

test('an outbox that cannot be written is logged; the statuses are still sent', async (t) => {
  const dir = await tempDir(t, 'duet-github');
  await writeFile(join(dir, 'not-a-dir'), '');
  const { github, reporter, log } = await rig(t, { outboxPath: join(dir, 'not-a-dir', 'outbox.ndjson') });
  reporter.queued(trigger());
  reporter.finished(trigger({ state: 'succeeded', color: 'green' }));
  await reporter.flush();
  assert.deepEqual(
    github.matching(STATUS_PATH).map((request) => (request.body as { description: string }).description),
    ['Queued', 'Live on green'],
  );
  assert.ok(log.lines.some((line) => line.level === 50 && /outbox: append failed/.test(line.msg)));
});

test('flush gives up after its timeout while GitHub keeps failing', async (t) => {
  const { github, reporter, log } = await rig(t);
  github.respondAlways('POST', STATUS_PATH, 502);
  reporter.queued(trigger());
  const begun = Date.now();
  await reporter.flush(150);
  assert.ok(Date.now() - begun < 2000);
  assert.ok(github.matching(STATUS_PATH).length >= 2, 'still retrying');
  assert.ok(log.lines.some((line) => /flush timed out/.test(line.msg)));
});

test('a burst of pushes: a report still waiting for its turn is replaced by its newer state, and requests go one at a time within writes_per_minute', async (t) => {
  // 1 request per 100 ms window: 600 a minute.
  const { github, reporter } = await rig(t, { writesPerMinute: 600, paceWindowMs: 100 });
  const shas = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}${SHA.slice(2)}`);
  const started = performance.now();
  for (const [i, sha] of shas.entries()) {
    const pushed = trigger({ id: `d-${i}`, sha, resolvedSha: sha });
    reporter.queued(pushed);
    // Superseded by the next push before its turn came.
    reporter.finished({ ...pushed, state: 'superseded', supersededBy: `d-${i + 1}`, summary: 'Superseded by a newer push' });
  }
  await reporter.flush();
  const elapsed = performance.now() - started;
  const statuses = github.matching(/\/statuses\//, 'POST');
  // The first push's "Queued" went out at once, before its superseded state existed.
  assert.equal(statuses.length, shas.length + 1, `one request per commit, not two: ${statuses.length}`);
  for (const sha of shas) {
    const last = statuses.filter((request) => request.path.endsWith(sha)).at(-1);
    assert.equal((last?.body as { state?: string }).state, 'error', `${sha.slice(0, 7)} ends as superseded`);
  }
  assert.ok(elapsed >= (statuses.length - 1) * 100 - 50, `paced: ${statuses.length} requests took ${elapsed.toFixed(0)} ms, at most 1 per 100 ms`);
});

test('a secondary rate limit answer (Retry-After) holds every request, not only its own', async (t) => {
  const { github, reporter } = await rig(t);
  github.respond('POST', STATUS_PATH, { status: 403, body: { message: 'You have exceeded a secondary rate limit.' }, headers: { 'retry-after': '1' } });
  const started = performance.now();
  reporter.queued(trigger());
  await github.waitFor((requests) => requests.length === 1);
  reporter.queued(trigger({ id: 'd-0002', sha: OTHER_SHA, resolvedSha: OTHER_SHA }));
  await github.waitFor((requests) => requests.some((request) => request.path.endsWith(OTHER_SHA)), 10_000);
  const waited = performance.now() - started;
  assert.ok(waited >= 900, `the other commit's status waited for the 1 s GitHub asked for (went after ${waited.toFixed(0)} ms)`);
  await reporter.flush(10_000);
  assert.equal(github.matching(STATUS_PATH).length, 2, 'and the rate-limited one was sent again');
});
