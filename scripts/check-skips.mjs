#!/usr/bin/env node
// CI's gate on skipped tests: node scripts/check-skips.mjs REPORT [ALLOWED]
//
// The tests skip, visibly, what the machine cannot run (not root, no chromium, no mount namespace,
// a missing Debian tool). A developer may run `npm test` that way; CI may not pass with less than
// the whole suite, or a broken install would leave it green and covering less. So CI tees the
// test run's TAP report (node's reporter when stdout is not a terminal) into REPORT, and this
// fails on every skipped or todo test that ALLOWED (.ci/allowed-skips.json) does not list. Each
// entry there is { "test": "<name>", "why": "<why CI cannot run it>" }, a subtest named after its
// parents: "<parent> > <name>".
import { readFileSync } from 'node:fs';

const [reportPath, allowedPath = '.ci/allowed-skips.json'] = process.argv.slice(2);
if (!reportPath) fail('usage: node scripts/check-skips.mjs REPORT.tap [ALLOWED.json]');

const allowed = readAllowed(allowedPath);
const { skipped, summary } = readReport(reportPath);
if (skipped.length !== summary.skipped + summary.todo) {
  fail(`${reportPath}: read ${skipped.length} skipped or todo tests, but its summary counts ${summary.skipped} skipped and ${summary.todo} todo`);
}

const unexpected = skipped.filter((skip) => !allowed.has(skip.test));
const stale = [...allowed.keys()].filter((test) => !skipped.some((skip) => skip.test === test));
for (const test of stale) console.log(`check-skips: allowed but not skipped (remove it from ${allowedPath}?): ${test}`);
if (unexpected.length > 0) {
  const lines = unexpected.map((skip) => `  - ${skip.test} (${skip.directive === 'TODO' ? 'todo' : 'skipped'}${skip.reason ? `: ${skip.reason}` : ''})`);
  fail(
    `${unexpected.length} test(s) did not run, and ${allowedPath} does not allow that:\n${lines.join('\n')}\n` +
      `Install what they need (scripts/install-deps --for-tests, as root), or allow a skip in ${allowedPath} with the reason CI cannot run it.`,
  );
}
console.log(`check-skips: ${skipped.length === 0 ? 'no test skipped' : `${skipped.length} skipped, each allowed`} (${reportPath})`);

function fail(message) {
  console.error(`check-skips: ${message}`);
  process.exit(1);
}

function readAllowed(path) {
  let entries;
  try {
    entries = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    fail(`cannot read the allowed skips: ${error.message}`);
  }
  if (!Array.isArray(entries)) fail(`${path}: a JSON array of { "test", "why" } is expected`);
  const allowed = new Map();
  for (const [i, entry] of entries.entries()) {
    const keys = Object.keys(entry ?? {}).sort().join(',');
    if (keys !== 'test,why' || typeof entry.test !== 'string' || typeof entry.why !== 'string' || !entry.test.trim() || !entry.why.trim()) {
      fail(`${path}: entry ${i} must be { "test": "<name>", "why": "<why CI cannot run it>" }, both non-empty`);
    }
    allowed.set(entry.test, entry.why);
  }
  return allowed;
}

/**
 * The skipped and todo tests of a TAP report as node's test runner writes it: a subtest is
 * indented 4 spaces a level under its parent, announced by `# Subtest: <name>`, and a directive
 * follows an unescaped ` # ` at the end of its `ok` line (a `#` in a name is written `\#`).
 */
function readReport(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    fail(`cannot read the test report: ${error.message}`);
  }
  const lines = text.split('\n');
  if (!lines.some((line) => line.startsWith('TAP version '))) {
    fail(`${path} holds no TAP report: run the tests with stdout not a terminal (or --test-reporter=tap)`);
  }
  const unescape = (name) => name.replace(/\\(.)/g, '$1');
  const parents = [];
  const skipped = [];
  const summary = {};
  for (const line of lines) {
    const subtest = /^((?: {4})*)# Subtest: (.*)$/.exec(line);
    if (subtest) {
      const level = subtest[1].length / 4;
      parents.length = level;
      parents[level] = unescape(subtest[2]);
      continue;
    }
    const result = /^((?: {4})*)(?:not )?ok \d+(?: - ((?:[^\\#]|\\.)*?))?(?: # (SKIP|TODO)\b\s*(.*))?$/i.exec(line);
    if (result && result[3]) {
      const level = result[1].length / 4;
      const name = unescape(result[2] ?? '');
      skipped.push({ test: [...parents.slice(0, level), name].join(' > '), directive: result[3].toUpperCase(), reason: result[4] ?? '' });
      continue;
    }
    const count = /^# (skipped|todo) (\d+)$/.exec(line);
    if (count) summary[count[1]] = Number(count[2]);
  }
  if (summary.skipped === undefined || summary.todo === undefined) {
    fail(`${path} has no summary (# skipped N, # todo N): the run did not finish`);
  }
  return { skipped, summary };
}
