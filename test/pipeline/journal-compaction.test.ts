import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Journal, newDeployId } from '../../src/pipeline/journal.js';
import { compactJournal } from '../../src/pipeline/journal-compaction.js';
import { tempDir } from '../support/tmp.js';

async function journalOf(t: Parameters<typeof tempDir>[0], deploys: number): Promise<{ journal: Journal; ids: string[]; unfinished: string }> {
  const journal = new Journal(join(await tempDir(t), 'journal.ndjson'));
  const ids: string[] = [];
  for (let i = 0; i < deploys; i += 1) {
    const id = newDeployId(new Date(Date.UTC(2026, 0, 1, 0, 0, i)));
    ids.push(id);
    const at = new Date().toISOString();
    await journal.append({ type: 'begin', id, at, kind: 'deploy', ref: `v${i}`, pid: process.pid });
    await journal.append({ type: 'step', id, at, step: 'resolve', status: 'done', ms: 3, detail: 'resolved' });
    await journal.append({ type: 'fact', id, at, sha: 'a'.repeat(40) });
    await journal.append({ type: 'end', id, at, outcome: 'success' });
  }
  // One that began and never ended, early on: its process died; the next lock holder closes it.
  const unfinished = newDeployId(new Date(Date.UTC(2025, 11, 31)));
  await journal.append({ type: 'begin', id: unfinished, at: new Date().toISOString(), kind: 'deploy', ref: 'v-dead', pid: 1 });
  return { journal, ids, unfinished };
}

test('the journal is compacted to its recent deploys and every unfinished one, by rename; under the size nothing happens', async (t) => {
  const { journal, ids, unfinished } = await journalOf(t, 40);
  assert.deepEqual(await compactJournal(journal, { keep: 10 }), [], 'under 2 MB: left alone');
  const before = await stat(journal.path);
  const dropped = await compactJournal(journal, { aboveBytes: 0, keep: 10 });
  const after = await stat(journal.path);
  assert.notEqual(after.ino, before.ino, 'a new file renamed into place');
  assert.ok(after.size < before.size / 2);
  const records = await journal.records();
  assert.deepEqual(records.map((r) => r.id).sort(), [...ids.slice(-9), unfinished].sort(), 'the last ten, the unfinished one among them');
  assert.equal(dropped.length, 31);
  const last = records.find((r) => r.id === ids.at(-1))!;
  assert.equal(last.outcome, 'success');
  assert.equal(last.sha, 'a'.repeat(40));
  assert.equal(last.steps.length, 1, 'a kept deploy keeps all its events');
});
