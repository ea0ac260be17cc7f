import assert from 'node:assert/strict';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from '../support/test.js';
import { EventLog } from '../../src/util/event-log.js';
import { tempDir } from '../support/tmp.js';

type Event = { n: number };
const parse = (value: unknown): Event | undefined =>
  typeof value === 'object' && value !== null && typeof (value as Event).n === 'number' ? (value as Event) : undefined;

test('an event log: appends whole lines, reads them back, skips and counts a torn line and one it does not understand', async (t) => {
  const dir = await tempDir(t, 'duet-event-log');
  const log = new EventLog<Event>(join(dir, 'sub', 'events.ndjson'), { parse });
  await log.append({ n: 1 });
  await log.append({ n: 2 }, { fsync: false });
  // A crash mid-append, then a line of a format this version does not know.
  await appendFile(log.path, '{"n":3,"tor');
  await log.append({ n: 4 });
  await appendFile(log.path, '{"future":true}\n');
  assert.deepEqual(await log.read(), { events: [{ n: 1 }, { n: 2 }, { n: 4 }], skipped: 2 });
  assert.equal((await readFile(log.path, 'utf8')).split('\n')[3], '{"n":4}', 'the torn line got its newline first: nothing was glued to it');
  assert.deepEqual(await new EventLog<Event>(join(dir, 'none.ndjson')).read(), { events: [], skipped: 0 }, 'no file: no events');
});

test('a rewrite (compaction) of a held log: the file is replaced whole, and the next append goes to the new file, not the old one', async (t) => {
  const dir = await tempDir(t, 'duet-event-log');
  const log = new EventLog<Event>(join(dir, 'events.ndjson'), { parse, everyWriteDurable: true });
  await log.hold();
  for (let n = 1; n <= 5; n += 1) await log.append({ n });
  await log.rewrite([{ n: 4 }, { n: 5 }]);
  await log.append({ n: 6 });
  assert.deepEqual((await log.read()).events, [{ n: 4 }, { n: 5 }, { n: 6 }]);
  await log.release();
  assert.equal(await readFile(log.path, 'utf8'), '{"n":4}\n{"n":5}\n{"n":6}\n');
});

test('an unheld log opens the file per append: a rewrite by another process (a rename over it) is never written through a stale handle', async (t) => {
  const dir = await tempDir(t, 'duet-event-log');
  const path = join(dir, 'events.ndjson');
  const log = new EventLog<Event>(path, { parse });
  await log.append({ n: 1 });
  // What another duet process's compaction does.
  await writeFile(join(dir, 'new'), '{"n":10}\n');
  await rename(join(dir, 'new'), path);
  await log.append({ n: 11 });
  assert.deepEqual((await log.read()).events, [{ n: 10 }, { n: 11 }]);
});
