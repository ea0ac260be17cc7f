import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunStep } from '../../src/errors.js';
import { JournalIndex } from '../../src/pipeline/journal-index.js';
import { Journal, newDeployId, type JournalEvent } from '../../src/pipeline/journal.js';
import { tempDir } from '../support/tmp.js';

const stepNames: RunStep[] = ['resolve', 'pick', 'update', 'start', 'health', 'switch', 'verify', 'watch', 'retire', 'record'];

/** The events of one whole deploy, as deploy.ts journals them. */
function deployEvents(n: number): JournalEvent[] {
  const id = newDeployId(new Date(Date.UTC(2026, 0, 1, 0, 0, n)));
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
  const events: JournalEvent[] = [{ type: 'begin', id, at, kind: 'deploy', ref: `v${n}`, pid: 1 }];
  events.push({ type: 'fact', id, at, sha: n.toString(16).padStart(40, '0'), resolvedRef: `refs/tags/v${n}`, from: 'blue', to: 'green' });
  for (const step of stepNames) {
    events.push({ type: 'step', id, at, step, status: 'started' });
    events.push({ type: 'step', id, at, step, status: 'done', ms: 12, detail: `${step} of v${n} went fine` });
  }
  events.push({ type: 'end', id, at, outcome: 'success' });
  return events;
}

test('JournalIndex: folds the journal once, then reads only what was appended; a replaced file is read again', async (t) => {
  const path = join(await tempDir(t, 'duet-journal-index'), 'journal.ndjson');
  const journal = new Journal(path);
  await journal.hold();
  for (let n = 1; n <= 400; n += 1) for (const event of deployEvents(n)) await journal.append(event);
  await journal.close();
  const { size } = await stat(path);
  assert.ok(size > 1_000_000, `a journal of ${size} bytes`);

  const index = new JournalIndex(path);
  assert.deepEqual(await index.records(), await journal.records(), 'the same records as folding the whole file');
  // Changed in place behind the index's back (a journal never is): an index that read the whole
  // file again would see it, one that reads only what was appended does not.
  const first = (await index.records())[0]!.id;
  const text = await readFile(path, 'utf8');
  const at = Buffer.byteLength(text.slice(0, text.indexOf('resolve of v1 went fine"')));
  const overwrite = async (detail: string): Promise<void> => {
    const handle = await open(path, 'r+');
    await handle.write(detail, at);
    await handle.close();
  };
  await overwrite('resolve of v1 went FINE');

  // One more deploy, and the start of a line still being written.
  const next = deployEvents(401);
  const appended = next.map((e) => `${JSON.stringify(e)}\n`).join('');
  await appendFile(path, `${appended}{"type":"begin","id":"202`);
  assert.equal((await new Journal(path).records())[0]!.steps[0]!.detail, 'resolve of v1 went FINE', 'the file did change');
  const record = await index.record(next[0]!.id);
  assert.equal(record?.outcome, 'success');
  assert.equal(record?.steps.length, stepNames.length);
  assert.equal((await index.record(first))!.steps[0]!.detail, 'resolve of v1 went fine', 'the new bytes only, not the file again');
  await overwrite('resolve of v1 went fine');
  assert.equal((await index.recent(3)).at(-1)?.id, next[0]!.id);

  const half = deployEvents(402)[0]!;
  await appendFile(path, `${JSON.stringify(half).slice('{"type":"begin","id":"202'.length)}\n`);
  assert.deepEqual(await index.records(), await journal.records(), 'the line finished later is read whole');

  // A caller's copy does not change under it.
  const copy = (await index.record(next[0]!.id))!;
  copy.steps.length = 0;
  assert.equal((await index.record(next[0]!.id))!.steps.length, stepNames.length);

  // Replaced (a rewrite, say): read from the start again.
  const replacement = `${path}.new`;
  await writeFile(
    replacement,
    deployEvents(500)
      .map((e) => `${JSON.stringify(e)}\n`)
      .join(''),
  );
  await rename(replacement, path);
  assert.deepEqual(
    (await index.records()).map((r) => r.ref),
    ['v500'],
  );
});
