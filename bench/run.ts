import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { hasCommit } from '../src/instance/checkout.js';
import { cliPath } from '../test/support/duet.js';
import { createAppRepo, repoRoot, type AppRepo } from '../test/support/git-repo.js';
import { freePort } from '../test/support/ports.js';
import { appFiles } from './lib/app.js';
import { createBaseline, type Baseline } from './lib/baseline.js';
import { awaitInterruptCleanup, closeAll, handleSignals, isInterrupted, openScope, ownDir, type Scope } from './lib/cleanup.js';
import { createDuetEnv, mustCli, type DuetEnv } from './lib/duet-env.js';
import { elapsedS, log } from './lib/log.js';
import { appendCommits, versionTags } from './lib/git-fast.js';
import { createShims, type Shims } from './lib/shims.js';
import { median } from './lib/stats.js';
import { writeLuaScripts } from './lib/wrk.js';
import type { Results } from './results.js';
import { runBreakdown } from './scenarios/breakdown.js';
import { duetLoadRows, naiveRows, pm2Rows, reloadAmidDeployRows, reloadRows, type ClientKind, type LoadSettings } from './scenarios/deploy-load.js';
import { runBuildIsolation } from './scenarios/build-isolation.js';
import { runInstallReuse } from './scenarios/install-reuse.js';
import { runWebhook } from './scenarios/webhook.js';
import {
  CRASH_AFTER_MS,
  crashingVersion,
  duetFails,
  naiveFails,
  pm2Fails,
  WATCH_S,
  type BaselineFailsSetup,
  type DuetFailsSetup,
  type FailsResult,
  type FailsSettings,
  type FailsSystem,
} from './scenarios/app-fails.js';
import { DUET_PORT, DUET_SOCKET, NAIVE_SETUP, PM2_CLUSTER } from './systems.js';
import { renderReport } from './table.js';

/**
 * `npm run bench [-- --quick] [--only part,...]`: every figure of bench/README.md, measured on
 * this machine in one run, printed as Markdown on stdout and written with all raw numbers to
 * bench/results.json.
 * Progress goes to stderr. Everything started is stopped and every temp dir removed, also on
 * failure and Ctrl-C.
 *
 * The three setups (duet in socket mode, duet in port mode, the baseline app behind its own nginx)
 * are prepared concurrently at the start, when nothing is being measured; the measurements then
 * run strictly one after another.
 */

const quick = process.argv.includes('--quick');

/** The measured parts, in run order; `--only webhook,port` runs a subset (to iterate on one). */
const PARTS = ['socket', 'port', 'baseline', 'install', 'webhook', 'fails', 'isolation'] as const;
type Part = (typeof PARTS)[number];
const only = parseOnly(process.argv);
const runs = (name: Part): boolean => only === null || only.has(name);
/** Why a setup that no part asked for (--only) was not prepared. */
const NOT_RUN = new Error('not run');

function parseOnly(argv: string[]): Set<Part> | null {
  const index = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (index < 0) return null;
  const value = argv[index]!.includes('=') ? argv[index]!.slice('--only='.length) : argv[index + 1];
  const names = (value ?? '').split(',').filter(Boolean);
  const unknown = names.filter((n) => !(PARTS as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    process.stderr.write(`--only takes a comma-separated list of ${PARTS.join(', ')}${unknown.length ? `; not a part: ${unknown.join(', ')}` : ''}\n`);
    process.exit(2);
  }
  return new Set(names as Part[]);
}

const settings = quick
  ? {
      deploysPerRow: 1,
      warmMs: 250,
      tailMs: 250,
      breakdownReps: 1,
      apiRollbackRounds: 1,
      installRounds: 1,
      rates: [100, 200],
      stepMs: 1000,
      goalStepMs: 2000,
      maxDurationS: 1,
      idleWaitMs: 300,
      startupRuns: 1,
      kills: 1,
    }
  : {
      deploysPerRow: 5,
      warmMs: 500,
      tailMs: 500,
      breakdownReps: 3,
      apiRollbackRounds: 2,
      installRounds: 2,
      rates: [50, 100, 200, 400, 800],
      stepMs: 4000,
      goalStepMs: 10_000,
      maxDurationS: 4,
      idleWaitMs: 2000,
      startupRuns: 5,
      kills: 3,
    };
const LOAD = { threads: 2, connections: 32 };
/**
 * Which client kinds load which deploys: the full run gives keep-alive and `Connection: close`
 * clients deploys of their own; --quick loads one deploy with both at once (16 connections each).
 */
const KIND_GROUPS: ClientKind[][] = quick ? [['keep-alive', 'close']] : [['keep-alive'], ['close']];
/** Tags for the loaded deploys of one system: one series per kind group. */
const loadSeries = (prefix: string[]): string[][] => KIND_GROUPS.map((_, i) => series(prefix[i]!, settings.deploysPerRow));
const WEBHOOK = { connections: 16, burst: 100 };
/** Section 7: the rate issue 28 measured the live color's p99 at (200 and 400 requests/s). */
const ISOLATION_RATE = 200;
/**
 * Section 6: both client kinds at once, 16 connections each (32 in all, as the load rows), each
 * request recorded; the windows are the same in --quick (only the number of kills differs).
 */
const FAILS_LOAD: FailsSettings['death']['load'] = { connections: 16, kinds: ['keep-alive', 'close'], warmMs: 500 };
const FAILS: FailsSettings = {
  kills: settings.kills,
  ...FAILS_LOAD,
  afterKillMs: 5000,
  duetTailMs: 5000,
  otherTailMs: 10_000,
  // The audit's pace: 60 requests of death in 21 s.
  death: { load: FAILS_LOAD, deaths: 20, intervalMs: 350, afterMs: 3000 },
};

async function versionOf(file: string, args: string[]): Promise<string | null> {
  const result = await execa(file, args, { reject: false, stdin: 'ignore', all: true });
  const text = String(result.all ?? '')
    .trim()
    .split('\n')[0];
  return text ? text.replace(/^nginx version: /, '') : null;
}

const series = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);

/** Run one measured part; a failure is recorded (its cells show n/a) and the run goes on. */
async function part(results: Results, name: string, title: string, work: () => Promise<void>): Promise<void> {
  if (isInterrupted()) return;
  results.meta.loadByPart[name] = loadavg()[0]!;
  log(`\n== ${title}`);
  try {
    await work();
  } catch (error) {
    if (isInterrupted()) return;
    const message = error instanceof Error ? error.message : String(error);
    results.failures[name] = message.split('\n')[0]!;
    log(`  FAILED: ${message}`);
  }
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
 * simple-git (duet's git runner) waits 50 ms after a git command that printed nothing before it
 * resolves (its completion-detection plugin). Measured here, because it is part of duet's overhead:
 * the same git run through simple-git, silent (`cat-file -e`) and printing (`rev-parse`).
 */
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

interface DuetSetupResult {
  env: DuetEnv;
  breakdown: string[];
  /** Per kind group, the tags of its deploys. */
  load: string[][];
  /** Per kind group, the tags deployed by hand around bare reloads (port mode). */
  amid: string[][];
}

/**
 * A duet setup in its steady state: both colors deployed once (v0, then w0), so that what is
 * measured are the deploys of a running service, not the first one into an empty directory.
 * w0 is live, v0 the warm standby.
 */
async function prepareDuet(scope: Scope, root: string, shims: Shims, mode: 'socket' | 'port', top?: Record<string, string>): Promise<DuetSetupResult> {
  const env = await createDuetEnv(scope, root, shims, { name: mode, switchMode: mode, top });
  const names = {
    breakdown: series('b', settings.breakdownReps),
    load: loadSeries(['k', 'c']),
    amid: mode === 'port' ? [series('r', settings.deploysPerRow)] : [],
  };
  await appendCommits(env.setup.repo, versionTags(['w0', ...names.breakdown, ...names.load.flat(), ...names.amid.flat()]));
  await mustCli(env, ['deploy', '--ref', env.initialTag]);
  await mustCli(env, ['deploy', '--ref', 'w0']);
  return { env, ...names };
}

interface BaselineSetup {
  repo: AppRepo;
  baseline: Baseline;
  tags: { naive: string[][]; pm2: string[][] };
}

async function prepareBaseline(scope: Scope, root: string): Promise<BaselineSetup> {
  const repo = await createAppRepo(scope.context, { files: appFiles('v0') });
  ownDir(join(repo.bareDir, '..'));
  await repo.tag('v0');
  const tags = { naive: loadSeries(['n', 'm']), pm2: loadSeries(['p', 'q']) };
  await appendCommits(repo, versionTags([...tags.naive.flat(), ...tags.pm2.flat()]));
  const baseline = await createBaseline(scope, root, repo, 'v0');
  return { repo, baseline, tags };
}

interface FailsSetups {
  socket: DuetFailsSetup;
  port: DuetFailsSetup;
  baseline: BaselineFailsSetup;
}

/**
 * Section 6's own setups: duet with the watch on (health.watch_s as installed; the timing rows
 * turn it off), each with a `duet serve` port, both colors warm (v0 the standby, f1 live, fx the
 * version that crashes, committed last since every later commit would inherit its
 * behaviour.json); and the baseline app (v0; nx crashes) behind its own nginx, with its app log.
 */
async function prepareFails(scope: Scope, root: string, shims: Shims): Promise<FailsSetups> {
  const duet = async (mode: 'socket' | 'port', system: string): Promise<DuetFailsSetup> => {
    const servePort = await freePort();
    const env = await createDuetEnv(scope, root, shims, {
      name: `fails-${mode}`,
      switchMode: mode,
      app: { health: `{ path: /health, timeout_s: 30, watch_s: ${WATCH_S} }` },
      top: { server: `{ listen: "127.0.0.1:${servePort}" }` },
    });
    await appendCommits(env.setup.repo, [...versionTags(['f1']), crashingVersion('fx')]);
    await mustCli(env, ['deploy', '--ref', env.initialTag]);
    await mustCli(env, ['deploy', '--ref', 'f1']);
    return { env, mode, system, servePort, live: 'f1', crashTag: 'fx' };
  };
  const baseline = async (): Promise<BaselineFailsSetup> => {
    const repo = await createAppRepo(scope.context, { files: appFiles('v0') });
    ownDir(join(repo.bareDir, '..'));
    await repo.tag('v0');
    await appendCommits(repo, [crashingVersion('nx')]);
    const appLog = join(root, 'fails-baseline-app.ndjson');
    return { baseline: await createBaseline(scope, root, repo, 'v0', { name: 'fails-baseline', appLog }), appLog, good: 'v0', crashTag: 'nx' };
  };
  const [socket, port, base] = await Promise.all([duet('socket', DUET_SOCKET), duet('port', DUET_PORT), baseline()]);
  return { socket, port, baseline: base };
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

  const shims: Shims = await createShims(root);
  const lua = await writeLuaScripts(root);
  const n = settings.deploysPerRow;
  const loadSettings: LoadSettings = { ...LOAD, warmMs: settings.warmMs, tailMs: settings.tailMs, wrkScript: lua.load };
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

  // --- setups, concurrently ----------------------------------------------------------------
  log(
    `\n== preparing: duet (socket), duet (port), the baseline app${runs('fails') ? '; for "the app fails": duet (socket, port) with the watch on, the baseline app' : ''}`,
  );
  results.meta.loadByPart.setup = loadavg()[0]!;
  const socketScope = openScope('socket');
  const portScope = openScope('port');
  const baselineScope = openScope('baseline');
  const failsScope = openScope('fails');
  const servePort = await freePort();
  const portServePort = await freePort();
  // A setup is prepared only for the parts that use it (all of them unless --only).
  const notNeeded = Promise.reject(NOT_RUN);
  notNeeded.catch(() => undefined);
  const [socketSetup, portSetup, baselineSetup, failsSetup] = await Promise.allSettled([
    runs('socket') || runs('webhook') ? prepareDuet(socketScope, root, shims, 'socket', { server: `{ listen: "127.0.0.1:${servePort}" }` }) : notNeeded,
    runs('port') || runs('install') ? prepareDuet(portScope, root, shims, 'port', { server: `{ listen: "127.0.0.1:${portServePort}" }` }) : notNeeded,
    runs('baseline') ? prepareBaseline(baselineScope, root) : notNeeded,
    runs('fails') ? prepareFails(failsScope, root, shims) : notNeeded,
  ]);
  const failedSetup = (name: string, outcome: PromiseSettledResult<unknown>): void => {
    if (outcome.status === 'rejected' && outcome.reason !== NOT_RUN) {
      const message = outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason);
      results.failures[name] = `setup failed: ${message.split('\n')[0]}`;
      log(`  ${name} setup FAILED: ${message}`);
    }
  };
  failedSetup('socket', socketSetup);
  failedSetup('port', portSetup);
  failedSetup('baseline', baselineSetup);
  failedSetup('fails', failsSetup);

  // --- duet, switch: socket: sections 2 and 1 ---------------------------------------------
  if (socketSetup.status === 'fulfilled' && runs('socket')) {
    const { env, breakdown, load } = socketSetup.value;
    await part(results, 'socket', 'duet, switch: socket: where a deploy goes, then deploys under load', async () => {
      results.breakdown.socket = await runBreakdown(env, 'socket', breakdown, 'w0', {
        scope: socketScope,
        port: servePort,
        rounds: settings.apiRollbackRounds,
      });
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await duetLoadRows(env, DUET_SOCKET, load[i]!, kinds, loadSettings)));
    });
  }

  // --- duet, switch: port, and a bare nginx -s reload of the same nginx -----------------------
  if (portSetup.status === 'fulfilled' && runs('port')) {
    const { env, breakdown, load, amid } = portSetup.value;
    await part(results, 'port', 'duet, switch: port: where a deploy goes, deploys under load; nginx -s reload', async () => {
      results.breakdown.port = await runBreakdown(env, 'port', breakdown, 'w0', { scope: portScope, port: portServePort, rounds: settings.apiRollbackRounds });
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await duetLoadRows(env, DUET_PORT, load[i]!, kinds, loadSettings)));
      // As many bare reloads as duet switched, each under its own load like duet's deploys.
      for (const kinds of KIND_GROUPS) results.load.push(...(await reloadRows(env, n, kinds, loadSettings)));
      // The same reloads amid the same deploy work (duet's update-instance and start-instance):
      // the reference for duet's keep-alive errors (the goal for Connection: close is 0 anyway).
      results.load.push(...(await reloadAmidDeployRows(env, amid[0]!, KIND_GROUPS[0]!, loadSettings)));
    });
  }

  // --- no tool, and pm2 ------------------------------------------------------------------
  if (baselineSetup.status === 'fulfilled' && runs('baseline')) {
    const { baseline, tags } = baselineSetup.value;
    await part(results, 'baseline', 'naive in-place restart; pm2 reload (cluster mode)', async () => {
      await baseline.naive.start();
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await naiveRows(baseline, tags.naive[i]!, kinds, loadSettings)));
      await baseline.naive.stop();
      log('  starting pm2 (cluster mode, 2 instances)');
      await baseline.pm2.start();
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await pm2Rows(baseline, tags.pm2[i]!, kinds, loadSettings)));
      await baseline.pm2.stop();
    });
  }
  await closeScope(baselineScope);

  // --- section 3: install reuse, on the port setup -----------------------------------------
  if (!runs('install')) {
    // not asked for
  } else if (portSetup.status === 'fulfilled') {
    await part(results, 'install', 'deploying again with the same dependencies (switch: port)', async () => {
      results.install = await runInstallReuse(portSetup.value.env, settings.installRounds);
    });
  } else {
    results.failures.install = 'the port setup failed';
  }
  await closeScope(portScope);

  // --- sections 4 and 5: webhook intake, footprint, on the socket setup ----------------------
  if (!runs('webhook')) {
    // not asked for
  } else if (socketSetup.status === 'fulfilled') {
    await part(results, 'webhook', 'webhook intake: duet serve and webhook (adnanh); footprint', async () => {
      const { env } = socketSetup.value;
      // The pushes name the tip of main: make sure that is what runs, so their deploys are no-ops.
      const main = await env.setup.repo.revParse('main');
      const last = (await env.records()).filter((r) => r.outcome === 'success').at(-1);
      if (last?.sha !== main) await mustCli(env, ['deploy', '--ref', 'main']);
      results.webhook = await runWebhook(
        socketScope,
        root,
        env,
        {
          rates: settings.rates,
          stepMs: settings.stepMs,
          goalStepMs: settings.goalStepMs,
          maxDurationS: settings.maxDurationS,
          maxConnections: WEBHOOK.connections,
          burst: WEBHOOK.burst,
          wrkScript: lua.webhook,
          idleWaitMs: settings.idleWaitMs,
          settleAfterLast: !quick,
        },
        servePort,
      );
    });
  } else {
    results.failures.webhook = 'the socket setup failed';
  }
  await closeScope(socketScope);

  // --- section 6: the app fails, on its own setups -------------------------------------------
  if (failsSetup.status === 'fulfilled' && runs('fails')) {
    const setups = failsSetup.value;
    await part(results, 'fails', 'the app fails: kill -9 of the live instance under load; a version that crashes after going live', async () => {
      const fails: FailsResult = { crashAfterMs: CRASH_AFTER_MS, watchS: WATCH_S, settings: FAILS, systems: [] };
      results.fails = fails;
      // One system's failure is recorded (its cells show n/a) and the others are still measured.
      const measure = async (system: string, work: () => Promise<FailsSystem>): Promise<void> => {
        if (isInterrupted()) return;
        log(`  -- ${system}`);
        try {
          fails.systems.push(await work());
        } catch (error) {
          if (isInterrupted()) return;
          const message = error instanceof Error ? error.message : String(error);
          results.failures[`fails, ${system}`] = message.split('\n')[0]!;
          log(`  FAILED: ${message}`);
        }
      };
      await measure(DUET_SOCKET, () => duetFails(failsScope, setups.socket, FAILS));
      await measure(DUET_PORT, () => duetFails(failsScope, setups.port, FAILS));
      await measure(PM2_CLUSTER, () => pm2Fails(setups.baseline, PM2_CLUSTER, FAILS));
      await measure(NAIVE_SETUP, () => naiveFails(setups.baseline, NAIVE_SETUP, FAILS));
    });
  }
  await closeScope(failsScope);

  // --- section 7: a build next to the live app, on a setup of its own -------------------------
  if (runs('isolation')) {
    const isolationScope = openScope('isolation');
    await part(results, 'isolation', 'a build next to the live app: fresh npm ci + tsc beside it, plain and with duet isolation', async () => {
      const env = await createDuetEnv(isolationScope, root, shims, { name: 'isolation', switchMode: 'port' });
      await mustCli(env, ['deploy', '--ref', env.initialTag]);
      results.isolation = await runBuildIsolation(root, env, { ratePerS: ISOLATION_RATE, rounds: quick ? 1 : 2 });
    });
    await closeScope(isolationScope);
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
