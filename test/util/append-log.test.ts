import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppendLog } from '../../src/util/append-log.js';
import { tempDir } from '../support/tmp.js';
import { fillDisk, mountTmpfs } from '../support/tmpfs.js';

test('AppendLog: concurrent appends all land, whole and in order', async (t) => {
  const path = join(await tempDir(t, 'duet-append'), 'log.ndjson');
  const log = new AppendLog(path);
  const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(i % 50) }));
  await Promise.all(lines.map((line) => log.append(line)));
  assert.deepEqual((await readFile(path, 'utf8')).split('\n').slice(0, -1), lines);
  await log.close();
  await log.append('after close');
  await log.close();
  assert.match(await readFile(path, 'utf8'), /\nafter close\n$/, 'a closed log opens again');
});

test('AppendLog: a line torn by a crash gets its newline before the next line', async (t) => {
  const path = join(await tempDir(t, 'duet-append-torn'), 'log.ndjson');
  await writeFile(path, '{"whole":1}\n{"torn":');
  const log = new AppendLog(path);
  await log.append('{"next":2}');
  await log.close();
  assert.equal(await readFile(path, 'utf8'), '{"whole":1}\n{"torn":\n{"next":2}\n');
});

test('AppendLog: a write that fails rejects its callers, and the next append tries again', async (t) => {
  const dir = await tempDir(t, 'duet-append-fail');
  const log = new AppendLog(join(dir, 'missing-dir', 'log.ndjson'));
  await assert.rejects(log.append('x'), /ENOENT/);
  await assert.rejects(log.append('y'), /ENOENT/, 'still failing, still reported');
});

/** The open flags of this process's descriptor for `path`, from /proc/self/fdinfo. */
async function openFlags(path: string): Promise<number[]> {
  const flags: number[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target !== path) continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    const octal = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
    if (octal) flags.push(parseInt(octal, 8));
  }
  return flags;
}

test('AppendLog: everyWriteDurable opens the file O_DSYNC (the write is the sync) and keeps each line', async (t) => {
  const dir = await tempDir(t, 'duet-append-dsync');
  const durable = new AppendLog(join(dir, 'durable.ndjson'), { everyWriteDurable: true });
  const plain = new AppendLog(join(dir, 'plain.ndjson'));
  await Promise.all([durable.append('{"a":1}'), durable.append('{"b":2}', { fsync: false }), plain.append('{"c":3}')]);

  const [durableFlags] = await openFlags(join(dir, 'durable.ndjson'));
  const [plainFlags] = await openFlags(join(dir, 'plain.ndjson'));
  assert.ok(durableFlags !== undefined && plainFlags !== undefined, 'both logs hold their file open');
  assert.equal(durableFlags & constants.O_DSYNC, constants.O_DSYNC, 'the durable log syncs on every write');
  assert.equal(durableFlags & constants.O_APPEND, constants.O_APPEND);
  assert.equal(plainFlags & constants.O_DSYNC, 0, 'the plain log syncs only when asked');

  await Promise.all([durable.close(), plain.close()]);
  assert.equal(await readFile(join(dir, 'durable.ndjson'), 'utf8'), '{"a":1}\n{"b":2}\n');
  assert.deepEqual(await openFlags(join(dir, 'durable.ndjson')), [], 'closed');
});

for (const durable of [true, false]) {
  test(`AppendLog on a full disk (${durable ? 'everyWriteDurable' : 'unsynced line'}): the append fails and leaves no part of its line`, async (t) => {
    const dir = await mountTmpfs(t, '64k', { label: 'duet-append-full' });
    const path = join(dir, 'log.ndjson');
    const log = new AppendLog(path, { everyWriteDurable: durable });
    t.after(() => log.close().catch(() => {}));
    // 12 bytes short of a page: once the disk is full, the next write lands 12 bytes and stops.
    const first = `${JSON.stringify({ first: 'x'.repeat(4096 - 12 - 13) })}`;
    await log.append(first);
    assert.equal((await readFile(path)).length, 4096 - 12);
    const free = await fillDisk(dir);

    const line = JSON.stringify({ op: 'accepted', pad: 'y'.repeat(200) });
    await assert.rejects(log.append(line, { fsync: durable }), { code: 'ENOSPC' });
    assert.equal(await readFile(path, 'utf8'), `${first}\n`, 'the 12 bytes that fitted were cut off again');
    await assert.rejects(log.append(line, { fsync: durable }), { code: 'ENOSPC' }, 'still full, still refused');
    assert.equal(await readFile(path, 'utf8'), `${first}\n`);

    await free();
    await log.append('{"after":1}', { fsync: durable });
    await log.close();
    assert.equal(await readFile(path, 'utf8'), `${first}\n{"after":1}\n`, 'the next record starts on a line of its own');
  });
}
