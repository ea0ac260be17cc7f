import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from './test.js';
import { tempDir } from './tmp.js';

let made: string | undefined;

test('a temp dir outlives the cleanups added after it: what writes into it is stopped first', async (t) => {
  const dir = await tempDir(t);
  made = dir;
  // As duet serve's kill is added after the temp dir it works in: it may still write until then.
  t.after(async () => {
    assert.ok(existsSync(dir), 'the temp dir is still there for a cleanup added after it');
    await writeFile(join(dir, 'written-during-cleanup'), 'x');
  });
});

test('the temp dir is gone once its test ended, with what a cleanup wrote into it', () => {
  assert.ok(made !== undefined);
  assert.equal(existsSync(made), false);
});
