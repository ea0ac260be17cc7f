import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import { isDeployId, newDeployId } from '../../src/pipeline/journal.js';
import { tempDir } from '../support/tmp.js';

test('deploy ids are sortable and the only names that reach the file system', () => {
  const id = newDeployId(new Date('2026-11-25T16:23:19Z'));
  assert.match(id, /^20261125-162319-[0-9a-f]{6}$/);
  assert.ok(isDeployId(id));
  for (const bad of ['../../etc/passwd', '20261125-162319-abcdef/..', '', '20261125-162319-ABCDEF']) assert.equal(isDeployId(bad), false, bad);
});

test('records fold from events; a line torn by a crash is skipped, not fatal', async (t) => {
  const journal = new AppJournal('app', join(await tempDir(t), 'app', 'journal.ndjson'));
  const at = (s: number) => new Date(Date.UTC(2026, 10, 25, 16, 0, s)).toISOString();
  await journal.append({ type: 'begin', id: 'a', at: at(0), kind: 'deploy', ref: 'v1', pid: 1 });
  await journal.append({ type: 'step', id: 'a', at: at(1), step: 'resolve', status: 'started' });
  await journal.append({ type: 'step', id: 'a', at: at(2), step: 'resolve', status: 'done', ms: 1000, detail: 'refs/tags/v1 is abc' });
  await journal.append({ type: 'fact', id: 'a', at: at(2), sha: 'abc', from: null, to: 'blue' });
  await journal.append({ type: 'end', id: 'a', at: at(5), outcome: 'success' });
  await journal.append({ type: 'begin', id: 'b', at: at(6), kind: 'deploy', ref: 'v2', pid: 2 });
  await journal.append({ type: 'step', id: 'b', at: at(7), step: 'update', status: 'started' });
  await appendFile(journal.path, '{"type":"step","id":"b","at":"2026-11-25T16:00:0'); // killed mid-write

  const [a, b] = await journal.all();
  assert.equal(a?.outcome, 'success');
  assert.equal(a?.totalMs, 5000);
  assert.equal(a?.resolvedSha, 'abc');
  assert.equal(a?.color, 'blue');
  assert.deepEqual(
    a?.steps.map((s) => [s.name, s.status, s.ms]),
    [['resolve', 'done', 1000]],
  );
  assert.equal(b?.outcome, null);
  assert.deepEqual(
    (await journal.unfinished()).map((r) => r.id),
    ['b'],
  );

  await journal.append({ type: 'end', id: 'b', at: at(9), outcome: 'interrupted' });
  const closed = await journal.deploy('b');
  assert.equal(closed?.outcome, 'interrupted');
  assert.equal(closed?.steps[0]?.status, 'failed', 'a step that never ended is shown as failed');
});

test("a deploy begun again under its own id (a resumed trigger) is one open record; the dead attempt's open step shows as failed", async (t) => {
  const journal = new AppJournal('app', join(await tempDir(t), 'app', 'journal.ndjson'));
  const at = (s: number) => new Date(Date.UTC(2026, 10, 25, 16, 0, s)).toISOString();
  await journal.append({ type: 'begin', id: 'r', at: at(0), kind: 'deploy', ref: 'v2', pid: 1 });
  await journal.append({ type: 'step', id: 'r', at: at(1), step: 'health', status: 'started' });
  await journal.append({ type: 'begin', id: 'r', at: at(5), kind: 'deploy', ref: 'v2', pid: 2 });
  await journal.append({ type: 'step', id: 'r', at: at(6), step: 'health', status: 'started' });

  const records = await journal.all();
  assert.equal(records.length, 1);
  assert.equal(records[0]?.outcome, null, 'still running, never shown as ended in between');
  assert.deepEqual(
    records[0]?.steps.map((s) => s.status),
    ['failed', 'started'],
  );
});
