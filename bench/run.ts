import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { hasCommit } from '../src/instance/checkout.js';
import { cliPath } from '../test/support/duet.js';
import { repoRoot } from '../test/support/git-repo.js';
import { awaitInterruptCleanup, closeAll, handleSignals, isInterrupted, openScope, ownDir, type Scope } from './lib/cleanup.js';
import { elapsedS, log } from './lib/log.js';
import { createShims } from './lib/shims.js';
import { median } from './lib/stats.js';
import { writeLuaScripts } from './lib/wrk.js';
import { PARTS, type Part } from './parts.js';
import type { Results } from './results.js';
import { FAILS, KIND_GROUPS, LOAD, quick, settings, WEBHOOK } from './settings.js';
import { SETUPS, type Bench, type SetupName, type Setups } from './setups.js';
import { renderReport } from './table.js';

/**
 * `npm run bench [-- --quick] [--only part,...]`: every figure of bench/README.md, measured on
 * this machine in one run, printed as Markdown on stdout and written with all raw numbers to
 * bench/results.json.
 * Progress goes to stderr. Everything started is stopped and every temp dir removed, also on
 * failure and Ctrl-C.
 *
 * The setups the parts need (parts.ts, setups.ts) are prepared concurrently at the start, when
 * nothing is being measured; the parts then run strictly one after another, and each setup is
 * closed once no later part needs it.
 */

const only = parseOnly(process.argv);
const selected = PARTS.filter((p) => only === null || only.has(p.name));

function parseOnly(argv: string[]): Set<string> | null {
  const index = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (index < 0) return null;
  const value = argv[index]!.includes('=') ? argv[index]!.slice('--only='.length) : argv[index + 1];
  const names = (value ?? '').split(',').filter(Boolean);
  const known = PARTS.map((p) => p.name);
  const unknown = names.filter((n) => !known.includes(n));
  if (names.length === 0 || unknown.length > 0) {
    process.stderr.write(`--only takes a comma-separated list of ${known.join(', ')}${unknown.length ? `; not a part: ${unknown.join(', ')}` : ''}\n`);
    process.exit(2);
  }
  return new Set(names);
}

async function versionOf(file: string, args: string[]): Promise<string | null> {
  const result = await execa(file, args, { reject: false, stdin: 'ignore', all: true });
  const text = String(result.all ?? '')
    .trim()
    .split('\n')[0];
  return text ? text.replace(/^nginx version: /, '') : null;
}

async function closeScope(scope: Scope): Promise<void> {
  for (const problem of await scope.close()) log(`  clean-up: ${problem}`);
}

/** How long `node -e 0` and `duet help` take: the floor under every CLI run. */
async function startupFloor(runs: number): Promise<{ nodeMs: number | null; duetHelpMs: number | null }> {
  const time = async (args: string[]): Promise<number> => {
    const started = performance.now();
    await execa('node', args, { stdin: 'ignore' });
    return performance.now() - started;
  };
  const node: number[] = [];
  const help: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    node.push(await time(['-e', '0']));
    help.push(await time([cliPath(), 'help']));
  }
  return { nodeMs: median(node), duetHelpMs: median(help) };
}

/**
 * simple-git waits 50 ms after a git command that printed nothing; duet's git wrapper avoids it
 * (src/instance/checkout.ts). Measured both ways: bare simple-git, and duet's silent hasCommit.
 */
async function simpleGitSilentPenalty(runs: number): Promise<{ silentMs: number | null; printingMs: number | null; duetSilentMs: number | null }> {
  const { simpleGit } = await import('simple-git');
  const cwd = repoRoot();
  const head = (
    await simpleGit({ baseDir: cwd })
      .revparse(['HEAD'])
      .catch(() => undefined)
  )?.trim();
  const time = async (args: string[]): Promise<number | undefined> => {
    const started = performance.now();
    try {
      await simpleGit({ baseDir: cwd }).raw(args);
    } catch {
      return undefined; // not a git checkout: not measured
    }
    return performance.now() - started;
  };
  const silent: number[] = [];
  const printing: number[] = [];
  const duetSilent: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const a = await time(['cat-file', '-e', 'HEAD']);
    const b = await time(['rev-parse', 'HEAD']);
    if (a !== undefined) silent.push(a);
    if (b !== undefined) printing.push(b);
    if (head) {
      const started = performance.now();
      await hasCommit(cwd, head);
      duetSilent.push(performance.now() - started);
    }
  }
  return { silentMs: median(silent), printingMs: median(printing), duetSilentMs: median(duetSilent) };
}

/** Run one measured part; a failure is recorded (its cells show n/a) and the run goes on. */
async function runPart(part: Part, setups: Partial<Setups>, scopes: Record<SetupName, Scope>, bench: Bench): Promise<void> {
  const { results } = bench;
  const missing = part.needs.find((name) => !setups[name]);
  if (missing) {
    // The setup's own failure is recorded already; under another name, say why this part is not.
    results.failures[part.name] ??= `the ${missing} setup failed`;
    return;
  }
  if (isInterrupted()) return;
  results.meta.loadByPart[part.name] = loadavg()[0]!;
  log(`\n== ${part.title}`);
  try {
    await part.run(setups as Setups, scopes, bench);
  } catch (error) {
    if (isInterrupted()) return;
    const message = error instanceof Error ? error.message : String(error);
    results.failures[part.name] = message.split('\n')[0]!;
    log(`  FAILED: ${message}`);
  }
}

/** Every setup a selected part needs, concurrently; one that fails is recorded, and the parts needing it do not run. */
async function prepareSetups(bench: Bench, scopes: Record<SetupName, Scope>): Promise<Partial<Setups>> {
  const names = (Object.keys(SETUPS) as SetupName[]).filter((name) => selected.some((p) => p.needs.includes(name)));
  log(`\n== preparing: ${names.map((name) => SETUPS[name].label).join('; ')}`);
  bench.results.meta.loadByPart.setup = loadavg()[0]!;
  const setups: Partial<Record<SetupName, unknown>> = {};
  await Promise.all(
    names.map(async (name) => {
      try {
        setups[name] = await SETUPS[name].prepare(scopes[name], bench);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        bench.results.failures[name] = `setup failed: ${message.split('\n')[0]}`;
        log(`  ${name} setup FAILED: ${message}`);
      }
    }),
  );
  return setups as Partial<Setups>;
}

async function main(): Promise<number> {
  handleSignals();
  const startedAt = new Date();
  const loadBefore = loadavg();
  const root = await mkdtemp(join(tmpdir(), 'duet-bench-'));
  // nginx's workers run as nobody when started as root and must reach the sockets below.
  await chmod(root, 0o755);
  ownDir(root);
  const rootScope = openScope('root');
  rootScope.after(() => rm(root, { recursive: true, force: true }));
  log(`duet benchmark${quick ? ' --quick' : ''}: scratch dir ${root}`);

  const shims = await createShims(root);
  const lua = await writeLuaScripts(root);
  const results: Results = {
    meta: {
      startedAt: startedAt.toISOString(),
      quick,
      durationS: 0,
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
      loadAverageBefore: loadBefore,
      loadAverageAfter: [],
      loadByPart: {},
      nginx: await versionOf('nginx', ['-v']),
      wrk: await versionOf('wrk', ['-v']),
      calibration: shims.calibration,
      startup: await startupFloor(settings.startupRuns),
      simpleGit: await simpleGitSilentPenalty(settings.startupRuns * 2 + 1),
      settings: {
        ...settings,
        kindGroups: KIND_GROUPS,
        loadThreads: LOAD.threads,
        loadConnections: LOAD.connections,
        webhookConnections: WEBHOOK.connections,
        burst: WEBHOOK.burst,
        fails: FAILS,
      },
    },
    load: [],
    breakdown: {},
    failures: {},
  };
  const loadSettings = { ...LOAD, warmMs: settings.warmMs, tailMs: settings.tailMs, wrkScript: lua.load };
  const bench: Bench = { root, shims, results, loadSettings, webhookScript: lua.webhook };

  const scopes = Object.fromEntries((Object.keys(SETUPS) as SetupName[]).map((name) => [name, openScope(name)])) as Record<SetupName, Scope>;
  const setups = await prepareSetups(bench, scopes);
  for (const [i, part] of selected.entries()) {
    await runPart(part, setups, scopes, bench);
    const later = selected.slice(i + 1);
    for (const name of part.needs) if (!later.some((p) => p.needs.includes(name))) await closeScope(scopes[name]);
  }

  results.meta.durationS = elapsedS();
  results.meta.loadAverageAfter = loadavg();
  if (isInterrupted()) return 130;

  log('\n== cleaning up');
  for (const problem of await closeAll()) log(`  ${problem}`);

  const report = renderReport(results);
  // --quick does not overwrite the numbers of the last full run, the ones to quote, nor does a
  // partial run (--only).
  const out = join(repoRoot(), 'bench', only ? 'results-partial.json' : quick ? 'results-quick.json' : 'results.json');
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${report}\n`);
  log(`wrote ${out}; the run took ${elapsedS().toFixed(0)} s`);
  return Object.keys(results.failures).length > 0 ? 1 : 0;
}

main().then(
  // After Ctrl-C the signal handler cleans up and exits; main must not exit under its feet.
  async (code) => (isInterrupted() ? awaitInterruptCleanup() : process.exit(code)),
  async (error: unknown) => {
    if (isInterrupted()) return awaitInterruptCleanup();
    log(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    for (const problem of await closeAll()) log(`  ${problem}`);
    process.exit(1);
  },
);
