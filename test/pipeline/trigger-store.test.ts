import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import { newDeployId } from '../../src/pipeline/journal.js';
import { compactJournal } from '../../src/pipeline/journal-compaction.js';
import type { TriggerRequest } from '../../src/pipeline/trigger.js';
import { TriggerStore } from '../../src/pipeline/trigger-store.js';
import { tempDir } from '../support/tmp.js';
import { trigger } from '../http/http-harness.js';

function record(n: number, app = 'cafeteria'): Deploy {
  return trigger({
    app,
    ref: 'refs/heads/main',
    sha: n.toString(16).padStart(40, '0'),
    source: 'push',
    deliveryId: `delivery-${n}`,
    id: newDeployId(new Date(Date.UTC(2026, 0, 1, 0, 0, n))),
  });
}

/** A delivery as the receiver hands it to the queue, by its id or its body's digest. */
function delivery(deliveryId: string | null, bodyDigest?: string, app = 'cafeteria'): TriggerRequest {
  return {
    app,
    kind: 'deploy',
    ref: 'refs/tags/v3',
    sha: null,
    fromSha: null,
    source: 'push',
    deliveryId,
    ...(bodyDigest && { bodyDigest }),
    requestedBy: null,
  };
}

/** The journals of one process: one AppJournal per app, shared by its store and its compactions. */
function processFiles(dir: string, apps: string[]): { apps: string[]; journalOf: (app: string) => AppJournal } {
  const journals = new Map(apps.map((app) => [app, new AppJournal(app, join(dir, app, 'journal.ndjson'))]));
  return { apps, journalOf: (app) => journals.get(app)! };
}

async function lines(path: string): Promise<Array<{ type: string; id: string }>> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { type: string; id: string });
}

test("triggers live in their app's journal: a deploy's compaction racing their appends loses none, and memory keeps the recent ones", async (t) => {
  const stateDir = await tempDir(t, 'duet-trigger-store');
  const files = processFiles(stateDir, ['cafeteria']);
  const journal = files.journalOf('cafeteria');
  const path = journal.path;
  const store = new TriggerStore(files);
  await store.open();

  // 200 triggers, each accepted, dequeued and settled, 20 at a time, a compaction (as at the end
  // of a deploy in duet serve's process) started with each batch; every tenth stays queued.
  const all = Array.from({ length: 200 }, (_, i) => record(i + 1));
  let rewrites = 0;
  for (let i = 0; i < all.length; i += 20) {
    const before = (await stat(path).catch(() => undefined))?.ino;
    await Promise.all([
      ...all.slice(i, i + 20).map(async (r, j) => {
        await store.accept(r);
        if ((i + j) % 10 === 9) return;
        await store.record(r.id, { type: 'dequeued' });
        await store.record(r.id, { type: 'settled', state: 'succeeded', summary: `done ${r.sha}` });
      }),
      compactJournal({ stateDir }, journal, { aboveBytes: 0, keep: 10 }),
    ]);
    if ((await stat(path)).ino !== before) rewrites += 1;
  }
  await store.close();
  assert.ok(rewrites >= 5, `${rewrites} rewrites raced the appends`);
  assert.ok(store.all().length < 60, `${store.all().length} records in memory`);

  const reopened = new TriggerStore(processFiles(stateDir, ['cafeteria']));
  await reopened.open();
  for (const r of all.filter((_, i) => i % 10 === 9)) assert.equal(reopened.get(r.id)?.state, 'queued', `unfinished ${r.id} kept`);
  for (const r of all.slice(-5)) assert.deepEqual(reopened.get(r.id), store.get(r.id), `recent ${r.id} kept as it was`);
  assert.equal(reopened.get(all.at(-2)!.id)?.summary, `done ${all.at(-2)!.sha}`);
  assert.equal(reopened.duplicateOf(delivery(all.at(-1)!.deliveryId))?.id, all.at(-1)!.id, 'deliveries still deduplicated');
  await reopened.close();
});

test('the state machine guards every write: a settled trigger does not move again, and nothing is written for it', async (t) => {
  const files = processFiles(await tempDir(t, 'duet-trigger-store'), ['cafeteria']);
  const path = files.journalOf('cafeteria').path;
  const store = new TriggerStore(files);
  await store.open();
  t.after(() => store.close());
  const r = record(1);
  await store.accept(r);
  await store.record(r.id, { type: 'superseded', by: 'later', summary: 'Superseded by later' });
  await assert.rejects(store.record(r.id, { type: 'dequeued' }), /cannot take a dequeued event in state superseded/);
  assert.deepEqual(
    (await lines(path)).map((line) => line.type),
    ['accepted', 'superseded'],
  );
});

test("deliveries are remembered per app, whatever else arrives: a compaction leaves a seen line of each dropped trigger's, a reopened store reads them", async (t) => {
  const dir = await tempDir(t, 'duet-trigger-seen');
  const files = processFiles(dir, ['cafeteria', 'menu']);
  const store = new TriggerStore(files);
  await store.open();
  const daysAgo = (days: number): string => new Date(Date.now() - days * 24 * 3600 * 1000).toISOString();
  const [old, tag, release] = [
    // Older than 3 days, but among the app's newest deliveries: still known (SEEN_AT_LEAST).
    { ...record(1), deliveryId: 'd-old', bodyDigest: 'c'.repeat(64), receivedAt: daysAgo(30) },
    { ...record(2), deliveryId: 'd-tag', bodyDigest: 'a'.repeat(64), receivedAt: daysAgo(2.9) },
    { ...record(3), deliveryId: 'd-release', bodyDigest: 'b'.repeat(64), receivedAt: daysAgo(1) },
  ];
  await store.accept(old);
  await store.accept(tag);
  await store.accept(release);
  // The push of the release's tag, merged into it while it waited: its body counts as seen too.
  await store.merge(release.id, { deliveryId: 'd-release-tag', bodyDigest: 'd'.repeat(64) });
  for (const r of [old, tag, release]) await store.record(r.id, { type: 'superseded', by: 'later', summary: 'Superseded' });
  // Other triggers, of this app and another.
  const others = Array.from({ length: 20 }, (_, i) => ({ ...record(10 + i, i % 2 ? 'menu' : 'cafeteria'), bodyDigest: i.toString(16).padStart(64, '0') }));
  for (const other of others) {
    await store.accept(other);
    await store.record(other.id, { type: 'superseded', by: 'later', summary: 'Superseded' });
  }
  const known = (s: TriggerStore): Array<string | undefined> =>
    [delivery('d-old'), delivery('d-tag'), delivery('new-id', 'a'.repeat(64)), delivery('d-release-tag'), delivery('another-id', 'd'.repeat(64))].map(
      (d) => s.duplicateOf(d)?.id,
    );
  const want = [old.id, tag.id, tag.id, release.id, release.id];
  assert.deepEqual(known(store), want);
  assert.equal(store.duplicateOf(delivery('d-tag', undefined, 'menu')), undefined, "per app: another app's deliveries are its own");

  // Compacted to the last deploy: each dropped trigger leaves one short line, oldest first.
  const path = files.journalOf('cafeteria').path;
  const dropped = await compactJournal({ stateDir: dir }, files.journalOf('cafeteria'), { aboveBytes: 0, keep: 1 });
  assert.ok([old.id, tag.id, release.id].every((id) => dropped.includes(id)));
  const seen = (await lines(path)).filter((line) => line.type === 'seen') as Array<{ type: string; id: string; at: string }>;
  const cafeteria = others.filter((o) => o.app === 'cafeteria').slice(0, -1);
  assert.deepEqual(
    seen.map((line) => line.id),
    [old.id, tag.id, release.id, ...cafeteria.map((o) => o.id)],
  );
  assert.deepEqual(seen[2], {
    type: 'seen',
    id: release.id,
    at: seen[2]!.at,
    deliveries: ['d-release', 'd-release-tag'],
    bodyDigests: ['b'.repeat(64), 'd'.repeat(64)],
  });
  assert.equal(store.get(tag.id), undefined, 'the trigger itself is compacted away');
  assert.deepEqual(known(store), want, 'the running store still knows them');
  await store.close();

  const again = processFiles(dir, ['cafeteria', 'menu']);
  const reopened = new TriggerStore(again);
  await reopened.open();
  t.after(() => reopened.close());
  assert.deepEqual(known(reopened), want, 'after a restart, from the seen lines');
  // A second compaction with nothing more to drop leaves the file as it is.
  const before = await readFile(path, 'utf8');
  assert.deepEqual(await compactJournal({ stateDir: dir }, again.journalOf('cafeteria'), { aboveBytes: 0, keep: 1 }), []);
  assert.equal(await readFile(path, 'utf8'), before);
});
