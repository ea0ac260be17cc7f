import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { repoRoot } from '../support/git-repo.js';
import { tempDir } from '../support/tmp.js';

/**
 * CI's gate (scripts/check-skips.mjs) against the TAP that node's test runner really writes: the
 * runner runs test files written here, one skipping the way the suite does (an option, t.skip(),
 * a subtest, a `#` in a name) and one that skips nothing.
 */
const SKIPPING = `import { test } from 'node:test';
test('chromium # in the name', (t) => { t.skip('chromium not installed'); });
test('a root-only part', async (t) => {
  await t.test('as nobody', { skip: 'needs root' }, () => {});
  await t.test('as the user', () => {});
});
test('systemd', { skip: 'no mount namespace' }, () => {});
test('later', { todo: 'not written yet' }, () => {});
test('runs', () => {});
`;
const PLAIN = `import { test } from 'node:test';
test('runs', () => {});
test('with a subtest', async (t) => { await t.test('inside', () => {}); });
`;

interface Gate {
  code: number;
  output: string;
}

async function reportOf(t: TestContext, source: string): Promise<{ dir: string; report: string }> {
  const dir = await tempDir(t, 'duet-check-skips');
  await writeFile(join(dir, 'fixture.test.mjs'), source);
  // Without the variable that tells a runner it runs under another one (this test's own).
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const run = await execa('node', ['--test', '--test-reporter=tap', join(dir, 'fixture.test.mjs')], {
    env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 30_000,
  });
  const report = join(dir, 'report.tap');
  await writeFile(report, String(run.stdout));
  return { dir, report };
}

async function gate(dir: string, report: string, allowed: unknown[] | string = []): Promise<Gate> {
  const allowedPath = join(dir, 'allowed.json');
  await writeFile(allowedPath, typeof allowed === 'string' ? allowed : JSON.stringify(allowed));
  const result = await execa('node', [join(repoRoot(), 'scripts', 'check-skips.mjs'), report, allowedPath], {
    reject: false,
    all: true,
    stdin: 'ignore',
    timeout: 30_000,
  });
  return { code: result.exitCode ?? -1, output: String(result.all) };
}

test('check-skips passes a run that skipped nothing', async (t) => {
  const { dir, report } = await reportOf(t, PLAIN);
  const result = await gate(dir, report);
  assert.equal(result.code, 0, result.output);
  assert.match(result.output, /no test skipped/);
});

test('check-skips fails on every skip and todo the allow-list does not name, with its reason', async (t) => {
  const { dir, report } = await reportOf(t, SKIPPING);
  const result = await gate(dir, report);
  assert.equal(result.code, 1, result.output);
  assert.match(result.output, /4 test\(s\) did not run/);
  assert.match(result.output, /- chromium # in the name \(skipped: chromium not installed\)/);
  assert.match(result.output, /- a root-only part > as nobody \(skipped: needs root\)/);
  assert.match(result.output, /- systemd \(skipped: no mount namespace\)/);
  assert.match(result.output, /- later \(todo: not written yet\)/);
  assert.doesNotMatch(result.output, /as the user|- runs/);

  const some = await gate(dir, report, [
    { test: 'chromium # in the name', why: 'no browser on this CI' },
    { test: 'systemd', why: 'the CI container refuses mount namespaces' },
  ]);
  assert.equal(some.code, 1, some.output);
  assert.match(some.output, /2 test\(s\) did not run/);
  assert.doesNotMatch(some.output, /- chromium|- systemd/);

  const all = await gate(dir, report, [
    { test: 'chromium # in the name', why: 'no browser on this CI' },
    { test: 'a root-only part > as nobody', why: 'CI runs as root, so never' },
    { test: 'systemd', why: 'the CI container refuses mount namespaces' },
    { test: 'later', why: 'written in issue 99' },
    { test: 'gone', why: 'it runs now' },
  ]);
  assert.equal(all.code, 0, all.output);
  assert.match(all.output, /4 skipped, each allowed/);
  assert.match(all.output, /allowed but not skipped .*: gone/);
});

test('check-skips fails on an allow-list entry without its reason, a report that did not finish, and one that is not TAP', async (t) => {
  const { dir, report } = await reportOf(t, PLAIN);
  const noReason = await gate(dir, report, [{ test: 'runs', why: ' ' }]);
  assert.equal(noReason.code, 1);
  assert.match(noReason.output, /entry 0 must be \{ "test": "<name>", "why": "<why CI cannot run it>" \}, both non-empty/);
  assert.equal((await gate(dir, report, '{}')).code, 1);

  const cut = join(dir, 'cut.tap');
  await writeFile(cut, (await readFile(report, 'utf8')).split('\n').slice(0, 4).join('\n'));
  const unfinished = await gate(dir, cut);
  assert.equal(unfinished.code, 1);
  assert.match(unfinished.output, /has no summary .*: the run did not finish/);

  const spec = join(dir, 'spec.txt');
  await writeFile(spec, '✔ runs (0.4ms)\nℹ tests 1\nℹ skipped 0\n');
  const notTap = await gate(dir, spec);
  assert.equal(notTap.code, 1);
  assert.match(notTap.output, /holds no TAP report/);
});
