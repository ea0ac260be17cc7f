import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { identify } from '../../src/instance/process-identity.js';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import { newDeployId } from '../../src/pipeline/journal.js';
import { compactJournal } from '../../src/pipeline/journal-compaction.js';
import { acquireServeLock } from '../../src/pipeline/serve-lock.js';
import { journalEvents, journalRuns } from '../support/journal.js';
import { tempDir } from '../support/tmp.js';
import { trigger } from '../http/http-harness.js';

async function journalOf(
  t: Parameters<typeof tempDir>[0],
  deploys: number,
): Promise<{ journal: AppJournal; stateDir: string; ids: string[]; unfinished: string }> {
  const stateDir = await tempDir(t);
  const journal = new AppJournal('app', join(stateDir, 'journal.ndjson'));
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
  return { journal, stateDir, ids, unfinished };
}

test('the journal is compacted to its recent deploys and every unfinished one, by rename; under the size nothing happens', async (t) => {
  const { journal, stateDir, ids, unfinished } = await journalOf(t, 40);
  assert.deepEqual(await compactJournal({ stateDir }, journal, { keep: 10 }), [], 'under 2 MB: left alone');
  const before = await stat(journal.path);
  const dropped = await compactJournal({ stateDir }, journal, { aboveBytes: 0, keep: 10 });
  const after = await stat(journal.path);
  assert.notEqual(after.ino, before.ino, 'a new file renamed into place');
  assert.ok(after.size < before.size);
  const records = await journalRuns(journal.path);
  assert.deepEqual(records.map((r) => r.id).sort(), [...ids.slice(-9), unfinished].sort(), 'the last ten, the unfinished one among them');
  assert.equal(dropped.length, 31);
  const last = records.find((r) => r.id === ids.at(-1))!;
  assert.equal(last.outcome, 'success');
  assert.equal(last.resolvedSha, 'a'.repeat(40));
  assert.equal(last.steps.length, 1, 'a kept deploy keeps all its events');
});

test('compaction keeps a trigger still queued however old, and drops an old superseded one with the old deploys', async (t) => {
  const stateDir = await tempDir(t);
  const journal = new AppJournal('app', join(stateDir, 'journal.ndjson'));
  const queued = trigger({ id: newDeployId(new Date(Date.UTC(2025, 0, 1))) });
  const superseded = trigger({ id: newDeployId(new Date(Date.UTC(2025, 0, 2))) });
  for (const record of [queued, superseded]) await journal.append({ type: 'accepted', id: record.id, at: record.receivedAt!, trigger: record });
  await journal.append({ type: 'superseded', id: superseded.id, at: new Date().toISOString(), by: queued.id, summary: 'Superseded' });
  const ids: string[] = [];
  for (let i = 0; i < 20; i += 1) {
    const id = newDeployId(new Date(Date.UTC(2026, 0, 1, 0, 0, i)));
    ids.push(id);
    await journal.append({ type: 'begin', id, at: new Date().toISOString(), kind: 'deploy', ref: `v${i}`, pid: process.pid });
    await journal.append({ type: 'end', id, at: new Date().toISOString(), outcome: 'success' });
  }
  const dropped = await compactJournal({ stateDir }, journal, { aboveBytes: 0, keep: 5 });
  const lines = (await readFile(journal.path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; id: string });
  const kept = new Set(lines.filter((line) => line.type !== 'compacted').map((line) => line.id));
  assert.deepEqual([...kept].sort(), [queued.id, ...ids.slice(-5)].sort(), 'the queued trigger and the newest five');
  assert.ok(dropped.includes(superseded.id), 'the superseded trigger went with the old deploys');
  assert.equal(dropped.length, 16);
  const summaries = lines.filter((line) => line.type === 'compacted');
  assert.deepEqual(summaries.map((line) => line.id).sort(), [...dropped].sort(), 'a summary of each deploy dropped');
  assert.deepEqual(
    summaries.find((line) => line.id === superseded.id),
    {
      type: 'compacted',
      id: superseded.id,
      at: (await journalEvents(journal.path)).find((e) => e.id === superseded.id)!.at,
      kind: 'deploy',
      ref: null,
      resolvedSha: null,
      state: 'superseded',
      summary: 'Superseded',
      startedAt: superseded.receivedAt,
    },
  );
});

test("a compaction leaves one line of each deploy it drops, kept for 90 days and the app's newest 5,000, through later compactions", async (t) => {
  const stateDir = await tempDir(t);
  const journal = new AppJournal('app', join(stateDir, 'journal.ndjson'));
  const lines: string[] = [];
  const run = (when: Date, outcome: 'success' | 'failed'): string => {
    const id = newDeployId(when);
    const at = when.toISOString();
    lines.push(JSON.stringify({ type: 'begin', id, at, kind: 'deploy', ref: 'v1', pid: 1 }));
    lines.push(JSON.stringify({ type: 'fact', id, at, sha: 'b'.repeat(40) }));
    const failed = { error: 'health: HTTP 500 from /health\n--- last output ---', failedStep: 'health' };
    lines.push(JSON.stringify({ type: 'end', id, at, outcome, ...(outcome === 'failed' ? failed : {}) }));
    return id;
  };
  const day = 24 * 60 * 60 * 1000;
  const old = Array.from({ length: 50 }, (_, i) => run(new Date(Date.now() - 91 * day + i * 1000), 'success'));
  const recent = Array.from({ length: 5_010 }, (_, i) => run(new Date(Date.now() - 89 * day + i * 1000), i === 4_000 ? 'failed' : 'success'));
  await writeFile(journal.path, `${lines.join('\n')}\n`);

  const dropped = await compactJournal({ stateDir }, journal, { aboveBytes: 0, keep: 3 });
  assert.equal(dropped.length, 50 + 5_007);
  const summaries = async () => (await journalEvents(journal.path)).filter((e) => e.type === 'compacted');
  const first = await summaries();
  assert.deepEqual(
    first.map((e) => e.id),
    recent.slice(-5_003, -3),
    'the newest 5,000 of those dropped; none older than 90 days',
  );
  assert.ok(!first.some((e) => old.includes(e.id)));
  const failed = first.find((e) => e.id === recent[4_000]);
  assert.deepEqual(failed && [failed.state, failed.summary, failed.resolvedSha], ['failed', 'health: HTTP 500 from /health', 'b'.repeat(40)]);
  assert.deepEqual(
    (await journalRuns(journal.path)).map((r) => r.id),
    recent.slice(-3),
    'only the last three whole',
  );

  // The next compactions carry them over, once each, until their time is up.
  await journal.append({ type: 'begin', id: newDeployId(), at: new Date().toISOString(), kind: 'deploy', ref: 'v2', pid: 1 });
  await compactJournal({ stateDir }, journal, { aboveBytes: 0, keep: 3 });
  const second = await summaries();
  assert.equal(second.length, 5_000);
  assert.deepEqual(second.at(-1)?.id, recent.at(-3), 'the deploy dropped now is the newest summary');
  assert.equal(new Set(second.map((e) => e.id)).size, 5_000);
});

test('from the CLI, compaction waits for no duet serve: while one runs, the journal is left to its next deploy', async (t) => {
  const { journal, stateDir } = await journalOf(t, 20);
  const serveLock = join(stateDir, 'serve.lock'); // docs/serve.md
  const me = (await identify(process.pid))!;
  await writeFile(serveLock, JSON.stringify({ ...me, command: 'serve', since: new Date().toISOString(), token: 'x' }));
  const before = await stat(journal.path);
  assert.deepEqual(await compactJournal({ stateDir }, journal, { aboveBytes: 0, keep: 2 }), []);
  assert.equal((await stat(journal.path)).ino, before.ino, 'not rewritten: a live duet serve may be appending trigger events to it');
  assert.equal(JSON.parse(await readFile(serveLock, 'utf8')).command, 'serve', "the server's lock is left as it was");
});

test("a duet serve starting while the CLI compacts waits for the compaction's moment on its lock, then takes it", async (t) => {
  const stateDir = await tempDir(t);
  const serveLock = join(stateDir, 'serve.lock');
  const me = (await identify(process.pid))!;
  // What withServeLockUnlessServing writes while a shell's deploy compacts the journal.
  await writeFile(serveLock, JSON.stringify({ ...me, command: 'brief: journal compaction', since: new Date().toISOString(), token: 'x' }));
  let taken = false;
  const starting = acquireServeLock({ stateDir }).then((lock) => {
    taken = true;
    return lock;
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(taken, false, 'waiting, not refused as "another duet serve"');
  await unlink(serveLock);
  const lock = await starting;
  assert.equal(JSON.parse(await readFile(serveLock, 'utf8')).command, 'serve');
  await lock.release();
});
