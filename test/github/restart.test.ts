import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OTHER_SHA, rig, SHA, STATUS_PATH, trigger } from './helpers.js';

const running = { state: 'running', startedAt: '2024-05-01T10:00:01.000Z', color: 'green' } as const;
const succeeded = { ...running, state: 'succeeded', summary: 'Live on green in 8.2s' } as const;

const descriptions = (requests: Array<{ body: unknown }>): string[] =>
  requests.map((request) => `${(request.body as { state: string }).state}: ${(request.body as { description: string }).description}`);

test('reports left undelivered by a restart are re-sent by the next process, only the final state', async (t) => {
  const { github, reporter, restart, outboxPath } = await rig(t);
  github.respondAlways('POST', STATUS_PATH, 500);
  reporter.queued(trigger());
  reporter.started(trigger(running), 'green');
  reporter.finished(trigger(succeeded));
  await github.waitFor((requests) => requests.length >= 3);
  await reporter.close();
  const before = github.requests.length;
  const outbox = (await readFile(outboxPath, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  assert.deepEqual(
    outbox.filter((record) => record.op === 'enqueue').map((record) => record.report.state),
    ['pending', 'pending', 'success'],
    'each report was written to the outbox as it was enqueued',
  );

  github.respondAlways('POST', STATUS_PATH, undefined);
  const next = restart();
  await next.resume();
  await next.flush();
  assert.deepEqual(descriptions(github.requests.slice(before)), ['success: Live on green in 8.2s']);
  assert.equal(await readFile(outboxPath, 'utf8'), '', 'compacted once everything was delivered');

  // A third process finds nothing to do.
  const third = restart();
  await third.resume();
  await third.flush();
  assert.equal(github.requests.length, before + 1);
});

test('a report made after the restart is not overwritten by a replayed older one', async (t) => {
  const { github, reporter, restart } = await rig(t);
  github.respondAlways('POST', STATUS_PATH, 503);
  reporter.queued(trigger());
  reporter.started(trigger(running), 'green');
  await github.waitFor((requests) => requests.length >= 2);
  await reporter.close();
  const before = github.requests.length;

  github.respondAlways('POST', STATUS_PATH, undefined);
  const next = restart();
  // The queue reports the trigger's outcome before the outbox is replayed, and it is delivered.
  next.finished(trigger({ ...running, state: 'failed', summary: 'health failed: timeout after 60s' }));
  await next.flush();
  await next.resume();
  await next.flush();
  assert.deepEqual(descriptions(github.requests.slice(before)), ['failure: health failed: timeout after 60s']);
});

test('reports the new process delivers before resume() do not compact away the old ones', async (t) => {
  const { github, reporter, restart } = await rig(t);
  github.respondAlways('POST', STATUS_PATH, 500);
  reporter.finished(trigger(succeeded));
  await github.waitFor((requests) => requests.length >= 1);
  await reporter.close();
  github.respondAlways('POST', STATUS_PATH, undefined);
  const before = github.requests.length;

  const next = restart();
  next.queued(trigger({ id: 'd-0002', resolvedSha: OTHER_SHA }));
  await next.flush();
  await next.resume();
  await next.flush();
  assert.deepEqual(
    github.requests.slice(before).map((request) => request.path.split('/').pop()),
    [OTHER_SHA, SHA],
  );
});

test('a delivered report is not re-sent after a restart, and the outbox is compacted', async (t) => {
  const { github, reporter, restart, outboxPath } = await rig(t);
  await reporter.resume();
  reporter.queued(trigger());
  reporter.finished(trigger(succeeded));
  await reporter.flush();
  assert.equal(github.requests.length, 2);
  assert.equal(await readFile(outboxPath, 'utf8'), '');
  await reporter.close();

  const next = restart();
  await next.resume();
  await next.flush();
  assert.equal(github.requests.length, 2);
});

test('an outbox line torn by a crash is skipped; the records before it are replayed', async (t) => {
  const { github, restart, outboxPath, log } = await rig(t);
  const report = {
    type: 'status',
    triggerId: 'd-0009',
    owner: 'inu-appcenter',
    repo: 'cafeteria-server',
    sha: SHA,
    state: 'success',
    context: 'duet/cafeteria',
    description: 'Live on blue in 3.1s',
  };
  const key = `status inu-appcenter/cafeteria-server ${SHA} duet/cafeteria`;
  await mkdir(dirname(outboxPath), { recursive: true });
  await writeFile(
    outboxPath,
    [
      JSON.stringify({ op: 'enqueue', key, id: 'r1', report: { ...report, state: 'pending', description: 'Queued' } }),
      JSON.stringify({ op: 'done', key, id: 'r1' }),
      JSON.stringify({ op: 'enqueue', key, id: 'r2', report }),
      '{"op":"enqueue","key":"status inu-appcenter/cafeteria-server',
    ].join('\n'),
  );
  const next = restart();
  await next.resume();
  await next.flush();
  assert.deepEqual(descriptions(github.requests), ['success: Live on blue in 3.1s']);
  assert.ok(log.lines.some((line) => line.level === 40 && line.skipped === 1));
});
