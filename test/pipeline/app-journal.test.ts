import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppJournal, appJournal } from '../../src/pipeline/app-journal.js';
import type { JournalEvent } from '../../src/pipeline/journal.js';
import { newDeployId } from '../../src/pipeline/journal.js';
import { journalEvents } from '../support/journal.js';
import { tempDir } from '../support/tmp.js';
import { trigger } from '../http/http-harness.js';

const at = () => new Date().toISOString();

test('one AppJournal per app per process; it follows what another process appends, a line still being written read once whole', async (t) => {
  const stateDir = await tempDir(t, 'duet-app-journal');
  const config = { stateDir };
  assert.equal(appJournal(config, 'cafeteria'), appJournal(config, 'cafeteria'), 'the queue, a run and the API share one');
  assert.notEqual(appJournal(config, 'cafeteria'), appJournal(config, 'menu'));
  const serve = appJournal(config, 'cafeteria');
  const queued = trigger({ id: newDeployId() });
  await serve.append({ type: 'accepted', id: queued.id, at: at(), trigger: queued });
  assert.equal(serve.peek(queued.id)?.state, 'queued', "a trigger's event is folded as soon as it is on disk");

  // `duet deploy` from the shell, another process, appends its run to the same file.
  const shell = new AppJournal('cafeteria', serve.path);
  const cli = newDeployId();
  await shell.append({ type: 'begin', id: cli, at: at(), kind: 'deploy', ref: 'v2', pid: 4242 });
  await shell.append({ type: 'step', id: cli, at: at(), step: 'watch', status: 'started' });
  assert.equal((await serve.deploy(cli))?.state, 'watching', 'read on the next look');
  const half = JSON.stringify({ type: 'end', id: cli, at: at(), outcome: 'success' } satisfies JournalEvent);
  await appendFile(serve.path, half.slice(0, 20));
  assert.equal((await serve.deploy(cli))?.state, 'watching', 'half a line is not an event yet');
  await appendFile(serve.path, `${half.slice(20)}\n`);
  assert.equal((await serve.deploy(cli))?.state, 'succeeded', 'the whole line, once it is there');
  assert.deepEqual(
    (await serve.all()).map((d) => [d.id, d.state, d.source]),
    [
      [queued.id, 'queued', 'manual'],
      [cli, 'succeeded', null],
    ],
  );
});

test("a compaction through the process's AppJournal holds its appends back and loses none; a new follower reads every event from the first line", async (t) => {
  const stateDir = await tempDir(t, 'duet-app-journal');
  const journal = new AppJournal('cafeteria', join(stateDir, 'journal.ndjson'));
  journal.hold();
  t.after(() => journal.release());
  const ids = Array.from({ length: 60 }, (_, i) => newDeployId(new Date(Date.UTC(2026, 0, 1, 0, 0, i))));
  const before = await stat(journal.path).catch(() => undefined);
  await Promise.all([
    ...ids.map(async (id) => {
      await journal.append({ type: 'accepted', id, at: at(), trigger: trigger({ id, deliveryId: `d-${id}` }) });
      await journal.append({ type: 'superseded', id, at: at(), by: 'later', summary: 'Superseded' });
    }),
    // Keeps every line: only the rewrite itself matters here.
    journal.compact((events) => events),
    journal.compact((events) => events),
  ]);
  assert.notEqual((await stat(journal.path)).ino, before?.ino);
  const lines = await journalEvents(journal.path);
  assert.equal(lines.length, 120, 'every append is in the new file');
  assert.ok((await journal.all()).every((d) => d.state === 'superseded'));

  const seen: string[] = [];
  const stop = journal.onEvent((event) => seen.push(event.type));
  await journal.all();
  stop();
  assert.equal(seen.length, 120, 'a new follower is told of every line, not only of those after it came');
});
