import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { execa } from 'execa';
import { tempDir } from '../support/tmp.js';

const SIZE = 1024 * 1024;
const ROUNDS = 200;

/** writeFileAtomic in another process, as duet writes its records: 1 MB of `a`, then of `b`, and so on. */
const WRITER = `
const { writeFileAtomic } = await import(process.argv[1]);
const [path, size, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
for (let i = 0; i < rounds; i += 1) await writeFileAtomic(path, Buffer.alloc(size, i % 2 === 0 ? 'a' : 'b'), 0o644, { fsync: i % 4 !== 3 });
`;

/** What a reader found: the whole of one version, or what it saw instead. */
function verdict(content: Buffer): string {
  if (content.length !== SIZE) return `${content.length} bytes`;
  const first = content[0]!;
  return content.every((byte) => byte === first) ? 'whole' : 'two versions mixed';
}

test('a record rewritten by writeFileAtomic is never seen torn: a reader racing the writer, and after a kill -9 of it', async (t) => {
  const dir = await tempDir(t, 'duet-atomic');
  const path = join(dir, 'green.json');
  const module = new URL('../../src/util/atomic-file.js', import.meta.url).href;
  const writer = execa(process.execPath, ['--input-type=module', '-e', WRITER, module, path, String(SIZE), String(ROUNDS)], { reject: false });
  t.after(() => writer.kill('SIGKILL'));

  const seen = new Map<string, number>();
  let reads = 0;
  let done = false;
  void writer.finally(() => (done = true));
  while (!done) {
    const content = await readFile(path).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
    if (content) {
      reads += 1;
      const found = verdict(content);
      seen.set(found, (seen.get(found) ?? 0) + 1);
      // Killed mid-way once the reader has raced it a while: whatever the kill interrupted, the file is whole.
      if (reads === 100) writer.kill('SIGKILL');
    }
    await yieldToLoop();
  }
  const result = await writer;
  assert.ok(result.exitCode === 0 || result.signal === 'SIGKILL', result.stderr);
  assert.ok(reads >= 20, `the reader raced the writer (${reads} reads)`);
  assert.deepEqual([...seen.keys()], ['whole'], `every read saw one whole version: ${JSON.stringify(Object.fromEntries(seen))}`);
  assert.equal(verdict(await readFile(path)), 'whole', 'after the kill');
});
