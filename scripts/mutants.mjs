// `npm run mutants`: breaks duet on purpose, one promise at a time, and checks that the tests
// named for each breakage fail. A breakage the tests let through (a surviving mutant) is a README
// promise no test holds, and fails the run.
//
// The working tree (tracked and untracked files, uncommitted changes included) is copied to a
// temp dir with node_modules linked; each mutant's edits are applied there, built (tsc, then the
// bundle the CLI runs; not for a change to nginx/ alone), its test files run one by one (the first
// that fails kills it), and the files put back. The temp dir is removed at the end, whatever happens.
// Every edit must match its file exactly once: a mutant the code moved away from is an error.
//
//   npm run mutants                 every mutant in scripts/mutants-list.mjs
//   npm run mutants -- backoff env  only those whose name contains one of the words
//   npm run mutants -- --list       the list, nothing run
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MUTANTS } from './mutants-list.mjs';

/** One test that hangs under a mutant fails (node cancels it and runs its cleanup) instead of stalling the run. */
const TEST_TIMEOUT_MS = 300_000;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const words = args.filter((a) => !a.startsWith('--'));
const chosen = MUTANTS.filter((m) => words.length === 0 || words.some((w) => m.name.toLowerCase().includes(w.toLowerCase())));

if (args.includes('--list')) {
  for (const m of MUTANTS) console.log(`${m.name}\n  ${m.promise}\n  tests: ${m.tests.map(describeTest).join(', ')}`);
  process.exit(0);
}
if (chosen.length === 0) fail(`no mutant's name contains ${words.join(' or ')} (npm run mutants -- --list)`);

const work = mkdtempSync(join(tmpdir(), 'duet-mutants-'));
let child;
let stopping = false;
const stop = () => {
  // No further mutant; the test runner gets the terminal's Ctrl-C itself, a kill is passed on.
  stopping = true;
  child?.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  console.error(`mutants: ${error.message}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);

async function main() {
  const started = Date.now();
  copyWorkingTree();
  const pristine = new Map();
  for (const m of chosen) for (const e of m.edits) if (!pristine.has(e.file)) pristine.set(e.file, readFileSync(join(work, e.file), 'utf8'));
  // Every mutant is checked against the code before anything runs: a stale one wastes no time.
  const mutated = new Map(chosen.map((m) => [m, applyEdits(m, pristine)]));

  console.log(`mutants: ${chosen.length} in ${work}; building the unbroken tree first`);
  await build('the unbroken tree');
  let builtBroken = false;
  const rows = [];
  for (const [i, m] of chosen.entries()) {
    if (stopping) throw new Error('stopped by a signal');
    const t0 = Date.now();
    const files = mutated.get(m);
    const needsBuild = builtBroken || m.edits.some((e) => !e.file.startsWith('nginx/'));
    let row;
    try {
      for (const [file, text] of files) writeFileSync(join(work, file), text);
      if (needsBuild) {
        builtBroken = true;
        await build(m.name);
      }
      const result = await runTests(m.tests);
      row = { name: m.name, tests: m.tests.map(describeTest).join(', '), ...result };
    } catch (error) {
      row = { name: m.name, tests: m.tests.map(describeTest).join(', '), result: 'error', by: error.message };
    } finally {
      for (const file of files.keys()) writeFileSync(join(work, file), pristine.get(file));
      builtBroken = needsBuild;
    }
    row.seconds = Math.round((Date.now() - t0) / 1000);
    rows.push(row);
    console.log(`[${i + 1}/${chosen.length}] ${row.name}: ${row.result}${row.by ? ` (${row.by})` : ''}, ${row.seconds} s`);
  }
  printTable(rows);
  const total = Math.round((Date.now() - started) / 1000);
  const bad = rows.filter((r) => r.result !== 'killed');
  console.log(`\n${rows.length - bad.length} of ${rows.length} mutants killed in ${Math.floor(total / 60)} min ${total % 60} s`);
  if (bad.length > 0) {
    console.log(`NOT killed: ${bad.map((r) => `${r.name} (${r.result})`).join('; ')}`);
    return 1;
  }
  return 0;
}

function copyWorkingTree() {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    const from = join(root, file);
    if (!existsSync(from) || lstatSync(from).isSymbolicLink()) continue; // deleted in the working tree
    mkdirSync(dirname(join(work, file)), { recursive: true });
    copyFileSync(from, join(work, file));
  }
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'));
}

/** The mutant's files with its edits applied: each edit must match exactly once. */
function applyEdits(m, pristine) {
  const files = new Map();
  for (const e of m.edits) {
    const text = files.get(e.file) ?? pristine.get(e.file);
    const count = text.split(e.from).length - 1;
    if (count !== 1) throw new Error(`mutant "${m.name}" is stale: ${JSON.stringify(e.from)} occurs ${count} times in ${e.file}, not once`);
    files.set(
      e.file,
      text.replace(e.from, () => e.to),
    );
  }
  return files;
}

/** tsc (incremental: only what changed since the last build) and the CLI bundle. */
async function build(what) {
  const tsc = await run(process.execPath, [join(work, 'node_modules/typescript/bin/tsc'), '-p', '.', '--incremental']);
  if (tsc.code !== 0) throw new Error(`${what} does not compile:\n${tsc.output.trim()}`);
  const bundle = await run(process.execPath, ['scripts/bundle.mjs']);
  if (bundle.code !== 0) throw new Error(`${what}: the bundle failed:\n${bundle.output.trim()}`);
}

/** The test files one by one; the first that fails kills the mutant. */
async function runTests(tests) {
  for (const test of tests) {
    const [file, pattern] = typeof test === 'string' ? [test, undefined] : [test.file, test.only];
    const path = join('dist/test', `${file}.test.js`);
    if (!existsSync(join(work, path))) throw new Error(`no test file ${path}`);
    const argv = ['--test', `--test-timeout=${TEST_TIMEOUT_MS}`, ...(pattern ? [`--test-name-pattern=${pattern}`] : []), path];
    const result = await run(process.execPath, argv);
    if (result.code !== 0) return { result: 'killed', by: firstFailure(result.output) ?? `${file} exited ${result.code}` };
    if (!/^# pass [1-9]/m.test(result.output)) throw new Error(`${describeTest(test)} ran no test`);
  }
  return { result: 'survived' };
}

/**
 * The first failed test and why: a kill by a test's deadline is said as such, since on a loaded
 * machine a slow test can time out under a mutant that changed nothing (run that one again).
 */
function firstFailure(tap) {
  const lines = tap.split('\n');
  const at = lines.findIndex((l) => /^\s*not ok \d+ - /.test(l));
  if (at < 0) return undefined;
  const name = lines[at].replace(/^\s*not ok \d+ - /, '').slice(0, 100);
  const block = [];
  for (const l of lines.slice(at + 1)) {
    if (/^\s*\.\.\.$/.test(l)) break;
    block.push(l);
  }
  const timedOut = block.some((l) => /failureType: 'testTimeoutFailure'/.test(l));
  return timedOut ? `${name} [TIMED OUT: a hang the mutant caused, or a loaded machine]` : name;
}

function run(file, argv) {
  return new Promise((resolve) => {
    let output = '';
    child = spawn(file, argv, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('close', (code) => resolve({ code, output }));
  });
}

function describeTest(test) {
  return typeof test === 'string' ? test : `${test.file} /${test.only}/`;
}

function printTable(rows) {
  console.log('\n| mutant | tests | result | s |\n| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.name} | ${r.tests} | ${r.result}${r.result === 'killed' ? '' : ` ${(r.by ?? '').split('\n')[0]}`} | ${r.seconds} |`);
}

function fail(message) {
  console.error(`mutants: ${message}`);
  process.exit(1);
}
