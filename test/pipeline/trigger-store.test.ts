import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { newDeployId } from '../../src/pipeline/journal.js';
import type { TriggerRecord } from '../../src/pipeline/trigger.js';
import { TriggerStore } from '../../src/pipeline/trigger-store.js';
import { tempDir } from '../support/tmp.js';

function record(n: number): TriggerRecord {
  return {
    app: 'cafeteria',
    kind: 'deploy',
    ref: 'refs/heads/main',
    sha: n.toString(16).padStart(40, '0'),
    source: 'push',
    deliveryId: `delivery-${n}`,
    requestedBy: 'test',
    id: newDeployId(new Date(Date.UTC(2026, 0, 1, 0, 0, n))),
    state: 'queued',
    receivedAt: new Date().toISOString(),
    resolvedSha: null,
    supersededBy: null,
    summary: null,
    startedAt: null,
    finishedAt: null,
    color: null,
  };
}

test('the trigger file is compacted while duet serve runs, and appends racing the compaction are all kept', async (t) => {
  const path = join(await tempDir(t, 'duet-trigger-store'), 'triggers.ndjson');
  const store = new TriggerStore(path, { keepFinished: 10, onCompactFailed: (error) => assert.fail(String(error)) });
  await store.open();
  const { ino: before } = await stat(path).catch(() => ({ ino: -1 }));

  // 200 triggers, each accepted then finished, 20 at a time; every tenth stays queued. The
  // compactions this sets off run while later appends are in flight.
  const all = Array.from({ length: 200 }, (_, i) => record(i + 1));
  for (let i = 0; i < all.length; i += 20) {
    await Promise.all(
      all.slice(i, i + 20).map(async (r, j) => {
        await store.accept(r);
        if ((i + j) % 10 === 9) return;
        await store.update(r.id, { state: 'running', startedAt: new Date().toISOString() });
        await store.update(r.id, { state: 'succeeded', finishedAt: new Date().toISOString(), summary: `done ${r.sha}` });
      }),
    );
  }
  await store.close();

  const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  assert.ok(lines.length < 100, `${lines.length} lines: compacted while running (400 were appended)`);
  assert.notEqual((await stat(path)).ino, before, 'replaced by rename');
  assert.ok(store.all().length < 100, `${store.all().length} records in memory`);

  const reopened = new TriggerStore(path, { keepFinished: 10 });
  await reopened.open();
  const queued = all.filter((_, i) => i % 10 === 9);
  for (const r of queued) assert.equal(reopened.get(r.id)?.state, 'queued', `unfinished ${r.id} kept`);
  for (const r of all.slice(-5)) assert.ok(reopened.get(r.id), `recent ${r.id} kept`);
  assert.equal(reopened.byDelivery(all.at(-1)!.deliveryId!)?.id, all.at(-1)!.id, 'deliveries still deduplicated');
  const sorted = (s: TriggerStore) => s.all().sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(sorted(reopened), sorted(store), 'the file holds exactly what memory does');
  await reopened.close();
});
