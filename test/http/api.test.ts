import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DuetError, InvalidInputError, NotSavedError, ShuttingDownError, UnknownAppError } from '../../src/errors.js';
import { exitCodeOf, httpStatusOf } from '../../src/error-kinds.js';
import { pickApp } from '../../src/config/load.js';
import { deployLogPath } from '../../src/pipeline/deploy-log.js';
import { appJournal } from '../../src/pipeline/app-journal.js';
import { newDeployId } from '../../src/pipeline/journal.js';
import { pollUntil } from '../../src/util/poll.js';
import { addTrigger, bearer, rawGet, readUntil, startHarness, trigger, TOKEN } from './http-harness.js';

const json = (body: unknown) => ({ method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify(body) });

test('the API needs the bearer token; without one configured it is closed, not open', async (t) => {
  const h = await startHarness(t);
  const none = await fetch(`${h.base}/apps/cafeteria/status`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
  assert.match((await none.json()).error, /bearer/i);
  const wrong = await fetch(`${h.base}/apps/cafeteria/deploy`, { method: 'POST', headers: bearer('nope') });
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers.get('www-authenticate') ?? '', /invalid_token/);
  const restart = await fetch(`${h.base}/apps/cafeteria/restart`, { method: 'POST', headers: bearer('nope') });
  assert.equal(restart.status, 401, 'a restart needs the token too');
  const prefix = await fetch(`${h.base}/metrics`, { headers: bearer(TOKEN.slice(0, -1)) });
  assert.equal(prefix.status, 401, 'a prefix of the token is not the token');
  assert.equal(h.queue.submitted.length, 0);
  assert.deepEqual(await (await fetch(`${h.base}/healthz`)).json(), { ok: true }, 'healthz needs no token');

  const closed = await startHarness(t, { token: undefined });
  const answer = await fetch(`${closed.base}/apps/cafeteria/deploy`, { method: 'POST', headers: bearer('anything') });
  assert.equal(answer.status, 503);
  assert.match((await answer.json()).error, /DUET_API_TOKEN/);
  assert.equal((await fetch(`${closed.base}/healthz`)).status, 200);
});

test('deploy and rollback are queued and answered 202 with the deploy id', async (t) => {
  const h = await startHarness(t);
  const deploy = await fetch(`${h.base}/apps/cafeteria/deploy`, json({ ref: 'v1.2.0' }));
  assert.equal(deploy.status, 202);
  const { deploy: id } = await deploy.json();
  assert.ok(h.queue.records.has(id));
  assert.equal(deploy.headers.get('location'), `/deploys/${id}`);
  assert.deepEqual(h.queue.submitted[0], {
    app: 'cafeteria',
    kind: 'deploy',
    ref: 'v1.2.0',
    sha: null,
    fromSha: null,
    source: 'manual',
    deliveryId: null,
    requestedBy: 'API',
  });

  const noBody = await fetch(`${h.base}/apps/menu/deploy`, { method: 'POST', headers: bearer() });
  assert.equal(noBody.status, 202);
  assert.equal(h.queue.submitted[1]?.ref, null, 'no ref: the default branch, chosen by the queue');

  const rollback = await fetch(`${h.base}/apps/cafeteria/rollback`, json({ from: '3F2A9C1' }));
  assert.equal(rollback.status, 202);
  assert.ok(h.queue.records.has((await rollback.json()).deploy));
  assert.equal(h.queue.submitted[2]?.kind, 'rollback');
  assert.equal(h.queue.submitted[2]?.app, 'cafeteria');
  assert.equal(h.queue.submitted[2]?.fromSha, '3f2a9c1', 'the commit it undoes, as git writes it');
});

test('bad input is refused with JSON before anything is queued', async (t) => {
  const h = await startHarness(t);
  for (const ref of ['v1;rm -rf /', '-upload-pack=x', 'a..b', '<script>', 42, '']) {
    const answer = await fetch(`${h.base}/apps/cafeteria/deploy`, json({ ref }));
    assert.equal(answer.status, 400, String(ref));
    assert.match((await answer.json()).error, /invalid ref/);
  }
  const unknownField = await fetch(`${h.base}/apps/cafeteria/deploy`, json({ branch: 'main' }));
  assert.equal(unknownField.status, 400);
  const malformed = await fetch(`${h.base}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': 'application/json' },
    body: '{"ref":',
  });
  assert.equal(malformed.status, 400);
  assert.ok((await malformed.json()).error);
  const form = await fetch(`${h.base}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { ...bearer(), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'ref=v1',
  });
  assert.equal(form.status, 415, 'a form body would otherwise be ignored and deploy the default branch');
  const huge = await fetch(`${h.base}/apps/cafeteria/deploy`, json({ ref: 'x'.repeat(20_000) }));
  assert.equal(huge.status, 413);

  // A rollback without the commit it undoes would be a toggle: the answer says how to name it.
  for (const init of [{ method: 'POST', headers: bearer() }, json({}), json({ from: null })]) {
    const answer = await fetch(`${h.base}/apps/cafeteria/rollback`, init);
    assert.equal(answer.status, 400);
    const body = await answer.json();
    assert.match(body.error, /a rollback names the commit it undoes: send \{"from": "<sha>"\}/);
    assert.match(body.hint, /GET \/apps\/cafeteria\/status shows it: colors\[enabled\]\.revision/);
  }
  for (const from of ['3f2a9c', 'g3f2a9c1', '3f2a9c1 ', 'HEAD', 'a'.repeat(65), 42, ['3f2a9c1']]) {
    const answer = await fetch(`${h.base}/apps/cafeteria/rollback`, json({ from }));
    assert.equal(answer.status, 400, String(from));
    assert.match((await answer.json()).error, /^invalid from .*: a commit id is 7 to 64 hex digits$/, String(from));
  }
  const rollbackRef = await fetch(`${h.base}/apps/cafeteria/rollback`, json({ from: '3f2a9c1', ref: 'v1' }));
  assert.equal(rollbackRef.status, 400);
  assert.match((await rollbackRef.json()).error, /unknown field "ref": the body takes only "from"/);

  for (const path of ['/apps/nope/deploy', '/apps/nope/rollback']) {
    const answer = await fetch(`${h.base}${path}`, json({}));
    assert.equal(answer.status, 404);
    assert.match((await answer.json()).error, /no app named "nope"/);
  }
  const status = await fetch(`${h.base}/apps/nope/status`, { headers: bearer() });
  assert.equal(status.status, 404);
  assert.equal(h.queue.submitted.length, 0);
});

test('deploy ids are checked before any lookup: no path traversal', async (t) => {
  const h = await startHarness(t);
  const app = pickApp(h.config, 'cafeteria');
  // Where deployLogPath(app, '../etc') would lead: a secret the API must never serve.
  const target = join(app.paths.deployLogs, '..', 'etc.log');
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, 'SECRET\n');
  for (const path of [
    '/deploys/../../etc/passwd',
    '/deploys/%2e%2e%2fetc/log',
    '/deploys/%2e%2e%2fetc',
    '/deploys/..%2F..%2Fetc%2Fpasswd/log',
    '/deploys/20261125-162319-abcdef%2f..%2f..%2fetc/log',
  ]) {
    const answer = await rawGet(h.port, path, { ...bearer(), accept: 'application/json' });
    assert.equal(answer.status, 404, path);
    assert.doesNotMatch(answer.body, /SECRET|root:/, path);
    assert.match(answer.headers['content-type'] as string, /json/, path);
  }
  assert.deepEqual(h.lookedUp, [], 'no bad id reached the journal');
  const unknown = await fetch(`${h.base}/deploys/${newDeployId()}`, { headers: bearer() });
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).error, /no such deploy/);
});

test('GET /deploys/:id merges the trigger with its journal record, and finds CLI deploys', async (t) => {
  const h = await startHarness(t);
  const app = pickApp(h.config, 'cafeteria');
  const journal = appJournal(h.config, app.name);
  const at = (s: number) => new Date(Date.UTC(2026, 10, 25, 16, 0, s)).toISOString();
  const queued = await addTrigger(h, { ref: 'v3' });
  const done = await addTrigger(h, { ref: 'v2', state: 'running', startedAt: at(1), color: 'green' });
  await journal.append({ type: 'begin', id: done.id, at: at(1), kind: 'deploy', ref: 'v2', pid: 1 });
  await journal.append({ type: 'step', id: done.id, at: at(1), step: 'resolve', status: 'started' });
  await journal.append({ type: 'step', id: done.id, at: at(2), step: 'resolve', status: 'done', ms: 1000, detail: 'refs/tags/v2' });
  await journal.append({ type: 'fact', id: done.id, at: at(2), sha: 'a'.repeat(40), resolvedRef: 'refs/tags/v2', from: 'blue', to: 'green' });
  await journal.append({ type: 'step', id: done.id, at: at(3), step: 'health', status: 'started' });
  await journal.append({ type: 'step', id: done.id, at: at(8), step: 'health', status: 'done', ms: 5000 });
  await journal.append({ type: 'end', id: done.id, at: at(9), outcome: 'success' });
  await journal.append({ type: 'settled', id: done.id, at: at(9), state: 'succeeded', summary: 'live on green in 8.0s', color: 'green' });

  const body = await (await fetch(`${h.base}/deploys/${done.id}`, { headers: bearer() })).json();
  assert.equal(body.id, done.id);
  assert.equal(body.app, 'cafeteria');
  assert.equal(body.state, 'succeeded');
  assert.equal(body.outcome, 'success');
  assert.equal(body.summary, 'live on green in 8.0s');
  assert.equal(body.requestedBy, 'API');
  assert.equal(body.sha, 'a'.repeat(40));
  assert.equal(body.from, 'blue');
  assert.equal(body.to, 'green');
  assert.equal(body.durationMs, 8000);
  assert.equal(body.log, `/deploys/${done.id}/log`);
  assert.deepEqual(
    body.steps.map((s: { name: string; status: string; ms: number }) => [s.name, s.status, s.ms]),
    [
      ['resolve', 'done', 1000],
      ['health', 'done', 5000],
    ],
  );

  const waiting = await (await fetch(`${h.base}/deploys/${queued.id}`, { headers: bearer() })).json();
  assert.equal(waiting.state, 'queued');
  assert.equal(waiting.ref, 'v3');
  assert.deepEqual(waiting.steps, []);

  // Started with `duet deploy` on the command line: only the journal of app "menu" knows it.
  const cli = newDeployId();
  const menu = appJournal(h.config, 'menu');
  await menu.append({ type: 'begin', id: cli, at: at(20), kind: 'rollback', ref: null, pid: 1 });
  await menu.append({ type: 'end', id: cli, at: at(21), outcome: 'failed', error: 'nothing to roll back to', failedStep: 'pick' });
  const fromCli = await (await fetch(`${h.base}/deploys/${cli}`, { headers: bearer() })).json();
  assert.equal(fromCli.app, 'menu');
  assert.equal(fromCli.kind, 'rollback');
  assert.equal(fromCli.state, 'failed');
  assert.equal(fromCli.error, 'nothing to roll back to');
  assert.equal(fromCli.failedStep, 'pick');
});

test('GET /deploys/:id/log follows a running deploy and ends when it finishes', async (t) => {
  const h = await startHarness(t);
  const app = pickApp(h.config, 'cafeteria');
  const record = await addTrigger(h, { ref: 'v2', state: 'running', startedAt: new Date().toISOString() });
  const journal = appJournal(h.config, app.name);
  await journal.append({ type: 'begin', id: record.id, at: new Date().toISOString(), kind: 'deploy', ref: 'v2', pid: process.pid });
  const log = deployLogPath(app, record.id);
  await mkdir(dirname(log), { recursive: true });
  await writeFile(log, 'line 1: resolve\n');

  const answer = await fetch(`${h.base}/deploys/${record.id}/log`, { headers: bearer() });
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-type') ?? '', /^text\/plain/);
  const reader = answer.body!.getReader();
  const seen = { text: '' };
  await readUntil(reader, seen, /line 1/);
  await appendFile(log, 'line 2: update\n');
  await readUntil(reader, seen, /line 2/);
  await appendFile(log, 'line 3: switch\nline 4: done\n');
  await journal.append({ type: 'end', id: record.id, at: new Date().toISOString(), outcome: 'success' });
  await journal.append({ type: 'settled', id: record.id, at: new Date().toISOString(), state: 'succeeded', summary: 'Live on green' });
  await readUntil(reader, seen, 'end');
  assert.equal(seen.text, 'line 1: resolve\nline 2: update\nline 3: switch\nline 4: done\n');

  // Finished: the whole file at once, and the response ends.
  assert.equal(await (await fetch(`${h.base}/deploys/${record.id}/log`, { headers: bearer() })).text(), seen.text);
});

test('the log of a queued deploy is waited for; a client hanging up stops the tailing', async (t) => {
  const h = await startHarness(t);
  const app = pickApp(h.config, 'cafeteria');
  const lookups = (id: string): number => h.lookedUp.filter((looked) => looked === id).length;
  const journal = appJournal(h.config, app.name);
  const polling = async (id: string): Promise<void> => {
    const before = lookups(id);
    const polled = await pollUntil(async () => (lookups(id) >= before + 3 ? true : undefined), { timeoutMs: 10_000 });
    assert.ok(polled, `the tail polls the journal for ${id}`);
  };
  const record = await addTrigger(h, { ref: 'v5' });
  const answer = await fetch(`${h.base}/deploys/${record.id}/log`, { headers: bearer() });
  assert.equal(answer.status, 200);
  const reader = answer.body!.getReader();
  const seen = { text: '' };
  await polling(record.id);
  const log = deployLogPath(app, record.id);
  await mkdir(dirname(log), { recursive: true });
  await journal.append({ type: 'dequeued', id: record.id, at: new Date().toISOString() });
  await writeFile(log, 'started late\n');
  await readUntil(reader, seen, /started late\n/);
  await appendFile(log, 'finished\n');
  await journal.append({ type: 'settled', id: record.id, at: new Date().toISOString(), state: 'failed', summary: 'health failed' });
  await readUntil(reader, seen, 'end');
  assert.equal(seen.text, 'started late\nfinished\n');

  const superseded = await addTrigger(h, { ref: 'v6', state: 'superseded', supersededBy: record.id });
  const never = await fetch(`${h.base}/deploys/${superseded.id}/log`, { headers: bearer() });
  assert.equal(never.status, 404);
  assert.match((await never.json()).error, /superseded/);

  const stuck = await addTrigger(h, { ref: 'v7' });
  const abort = new AbortController();
  const hungUp = await fetch(`${h.base}/deploys/${stuck.id}/log`, { headers: bearer(), signal: abort.signal });
  assert.equal(hungUp.status, 200);
  await polling(stuck.id);
  abort.abort();
  // The tail polls every 50 ms: one still going is never quiet for a second.
  let last = { count: lookups(stuck.id), at: Date.now() };
  const quiet = await pollUntil(
    async () => {
      const count = lookups(stuck.id);
      if (count !== last.count) last = { count, at: Date.now() };
      return Date.now() - last.at >= 1000 ? true : undefined;
    },
    { timeoutMs: 10_000, maxIntervalMs: 50 },
  );
  assert.ok(quiet, `no more polling after the client left (${lookups(stuck.id)} lookups)`);
});

test('status, healthz and metrics', async (t) => {
  const h = await startHarness(t);
  const status = await fetch(`${h.base}/apps/cafeteria/status`, { headers: bearer() });
  assert.equal(status.status, 200);
  const body = await status.json();
  assert.equal(body.app, 'cafeteria');
  assert.equal(body.enabled, null);
  assert.equal(body.colors.blue.running, false);

  assert.equal((await fetch(`${h.base}/metrics`)).status, 401);
  h.queue.add({ state: 'queued' });
  const finished = trigger({ state: 'succeeded', startedAt: '2026-11-25T16:00:00.000Z', finishedAt: '2026-11-25T16:00:12.000Z' });
  h.metrics.finished(finished);
  h.metrics.finished(trigger({ app: 'menu', state: 'superseded' }));
  h.metrics.recordDelivery('accepted');
  h.metrics.recordDelivery('bad-signature');
  const metrics = await fetch(`${h.base}/metrics`, { headers: bearer() });
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await metrics.text();
  assert.match(text, /^duet_deploys_total\{app="cafeteria",result="succeeded"\} 1$/m);
  assert.match(text, /^duet_deploys_total\{app="menu",result="superseded"\} 1$/m);
  assert.match(text, /^duet_deploys_total\{app="cafeteria",result="failed"\} 0$/m);
  assert.match(text, /^duet_deploy_duration_seconds_sum\{app="cafeteria"\} 12$/m);
  assert.match(text, /^duet_deploy_duration_seconds_bucket\{le="20",app="cafeteria"\} 1$/m);
  assert.match(text, /^duet_queue_depth\{app="cafeteria"\} 1$/m);
  assert.match(text, /^duet_queue_depth\{app="menu"\} 0$/m);
  assert.match(text, /^duet_webhook_deliveries_total\{outcome="accepted"\} 1$/m);
  assert.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics');

  const missing = await fetch(`${h.base}/no/such/route`, { headers: bearer() });
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { error: 'not found' });
});

test("the API answers by an error's kind (error-kinds.ts), from the table the CLI's exit code comes from too", async (t) => {
  const h = await startHarness(t);
  const cases: Array<[Error, number, 1 | 2]> = [
    [new ShuttingDownError(), 503, 1],
    [new NotSavedError('a trigger', '/var/lib/duet/triggers.ndjson', new Error('ENOSPC')), 503, 1],
    [new UnknownAppError('shop'), 404, 2],
    [new InvalidInputError('invalid ref', { step: 'resolve' }), 400, 2],
    [new DuetError('nothing to roll back to', { step: 'pick' }), 409, 1],
    [Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }), 500, 1],
    [Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' }), 500, 1],
  ];
  for (const [error, status, exit] of cases) {
    h.queue.submit = async () => {
      throw error;
    };
    const answer = await fetch(`${h.base}/apps/cafeteria/deploy`, json({}));
    assert.equal(answer.status, status, error.message);
    assert.equal(httpStatusOf(error), status, error.message);
    assert.equal(exitCodeOf(error), exit, error.message);
    const body = (await answer.json()) as { error: string };
    if (!(error instanceof DuetError)) assert.equal(body.error, 'internal error; see the duet serve log', 'no details of a fault to the caller');
  }
});

test('an error answer names no absolute path of the machine: the state dir is <state_dir>, any other path its file name; routes and URLs stay', async (t) => {
  const h = await startHarness(t);
  h.queue.submit = async () => {
    throw new DuetError(`could not read /etc/duet/github-token nor ${h.stateDir}/cafeteria/run/deploy.lock: EACCES`, {
      step: 'trigger',
      hint: `GET /apps/cafeteria/status shows it (https://deploy.example.com/deploys/x); then chmod ${h.stateDir}.`,
    });
  };
  const answer = await fetch(`${h.base}/apps/cafeteria/deploy`, { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: '{}' });
  assert.equal(answer.status, 409);
  assert.deepEqual(await answer.json(), {
    error: 'could not read …/github-token nor <state_dir>/cafeteria/run/deploy.lock: EACCES',
    hint: 'GET /apps/cafeteria/status shows it (https://deploy.example.com/deploys/x); then chmod <state_dir>.',
  });
});
