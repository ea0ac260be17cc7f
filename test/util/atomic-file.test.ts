import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { execa } from 'execa';
import { tempDir } from '../support/tmp.js';

const SIZE = 1024 * 1024;
/** Reads while the writer runs; then it is killed in the middle of its loop. */
const READS = 100;

/** writeFileAtomic in another process, as duet writes its records: 1 MB of `a`, then of `b`, and so on until killed. */
const WRITER = `
const { writeFileAtomic } = await import(process.argv[1]);
const [path, size] = [process.argv[2], Number(process.argv[3])];
for (let i = 0; ; i += 1) await writeFileAtomic(path, Buffer.alloc(size, i % 2 === 0 ? 'a' : 'b'), 0o644, { fsync: i % 4 !== 3 });
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
  const writer = execa(process.execPath, ['--input-type=module', '-e', WRITER, module, path, String(SIZE)], { reject: false });
  t.after(() => writer.kill('SIGKILL'));

  const seen = new Map<string, number>();
  let reads = 0;
  let exited = false;
  void writer.finally(() => (exited = true));
  while (reads < READS && !exited) {
    const content = await readFile(path).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
    if (content) {
      reads += 1;
      const found = verdict(content);
      seen.set(found, (seen.get(found) ?? 0) + 1);
    }
    await yieldToLoop();
  }
  process.stderr.write(`atomic-file: ${reads} reads while the writer ran\n`);
  // Whatever write the kill interrupts, the file is one whole version.
  writer.kill('SIGKILL');
  const result = await writer;
  assert.equal(result.signal, 'SIGKILL', `the writer ran until killed: ${result.stderr}`);
  assert.deepEqual([...seen.keys()], ['whole'], `every read saw one whole version: ${JSON.stringify(Object.fromEntries(seen))}`);
  assert.equal(verdict(await readFile(path)), 'whole', 'after the kill');
});
