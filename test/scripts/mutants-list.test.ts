import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../support/git-repo.js';

interface Mutant {
  name: string;
  edits: Array<{ file: string; from: string; to: string }>;
  tests: Array<string | { file: string; only: string }>;
}

/**
 * `npm run mutants` takes minutes and runs before a release, not in every CI run; this keeps its
 * list (scripts/mutants-list.mjs) applicable in between: code that moves away from a mutant's
 * edit, or a test file renamed, fails here at once instead of at the next mutation run.
 */
test('every mutant still applies: each edit matches its file exactly once, each test file exists', async () => {
  const root = repoRoot();
  const { MUTANTS } = (await import(pathToFileURL(join(root, 'scripts', 'mutants-list.mjs')).href)) as { MUTANTS: Mutant[] };
  assert.ok(MUTANTS.length >= 80);
  const stale: string[] = [];
  for (const mutant of MUTANTS) {
    for (const edit of mutant.edits) {
      const matches = (await readFile(join(root, edit.file), 'utf8')).split(edit.from).length - 1;
      if (matches !== 1) stale.push(`${mutant.name}: ${edit.file} matches ${matches} times`);
    }
    for (const spec of mutant.tests) {
      const file = typeof spec === 'string' ? spec : spec.file;
      if (!existsSync(join(root, 'test', `${file}.test.ts`))) stale.push(`${mutant.name}: no test/${file}.test.ts`);
    }
  }
  assert.deepEqual(stale, []);
});
