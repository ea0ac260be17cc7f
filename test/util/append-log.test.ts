import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppendLog } from '../../src/util/append-log.js';
import { tempDir } from '../support/tmp.js';

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
