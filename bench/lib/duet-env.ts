import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import { cliPath, setupDuet, type DuetSetup } from '../../test/support/duet.js';
import type { FileChanges } from '../../test/support/git-repo.js';
import { appFiles } from './app.js';
import { ownDir, track, type Scope } from './cleanup.js';
import type { Shims } from './shims.js';

/**
 * One duet installation for the benchmark: the app's git repository (a local bare repo standing in
 * for GitHub), a duet.yml with a managed nginx on loopback ports picked at run time, and the real
 * `duet` CLI run as a child process with the timing shims first in its PATH. Built on
 * test/support's setupDuet; everything is stopped and removed when `scope` closes.
 */

export interface DuetEnvOptions {
  name: string;
  switchMode: 'port' | 'socket';
  /** Files of the first version (tagged `initialTag`); the bench app by default. */
  files?: Record<string, string>;
  initialTag?: string;
  /** duet.yml app keys to set or override (YAML values). */
  app?: Record<string, string>;
  /** Extra top-level duet.yml keys (YAML values). */
  top?: Record<string, string>;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock ms since the epoch, taken right before the spawn and right after the exit. */
  startedAt: number;
  endedAt: number;
  wallMs: number;
}

/**
 * Lines of BENCH_APP_LOG, written by bench/app/server.js when it listens, when it exits after a
 * stop signal, and when it crashes as its behaviour.json asks (with its open connections).
 */
export type AppEvent =
  | { event: 'listening'; version: string; color: string | null; pid: number; spawnedAt: number; listeningAt: number }
  | { event: 'stopped'; version: string; color: string | null; pid: number; signalAt: number; exitAt: number }
  | { event: 'crashed'; version: string; color: string | null; pid: number; crashAt: number; connections: number | null };

export interface DuetEnv {
  name: string;
  setup: DuetSetup;
  shims: Shims;
  appLog: string;
  initialTag: string;
  /** Runs the CLI; a run past `timeoutMs` (180 s unless given) is killed and fails. */
  cli(args: string[], env?: Record<string, string>, timeoutMs?: number): Promise<CliRun>;
  /** Commit (VERSION = name, plus `files`) on main, tag it, push; returns the commit. */
  tag(name: string, files?: FileChanges): Promise<string>;
  records(): Promise<Deploy[]>;
  appEvents(): Promise<AppEvent[]>;
}

export const now = (): number => performance.timeOrigin + performance.now();

export async function createDuetEnv(scope: Scope, root: string, shims: Shims, options: DuetEnvOptions): Promise<DuetEnv> {
  const initialTag = options.initialTag ?? 'v0';
  const appLog = join(root, `${options.name}-app.ndjson`);
  const setup = await setupDuet(scope.context, {
    switchMode: options.switchMode,
    standby: 'keep',
    tags: { [initialTag]: options.files ?? appFiles(initialTag) },
    top: options.top,
    app: {
      install: JSON.stringify(`${shims.timed} install npm ci --offline --no-audit --no-fund`),
      build: JSON.stringify(`${shims.timed} build node build.js`),
      start: JSON.stringify('exec node server.js'),
      // BENCH_CHILD_LOG for the `timed` shim of install and build: those get the app's env, not duet's.
      env: `{ BENCH_APP_LOG: ${JSON.stringify(appLog)}, BENCH_CHILD_LOG: ${JSON.stringify(shims.childLog)} }`,
      // The watch after a switch is deliberate waiting, not overhead: off for the timing rows (the
      // "app fails" section turns it on).
      health: '{ path: /health, timeout_s: 30, watch_s: 0 }',
      stop_timeout_s: '5',
      ...options.app,
    },
  });
  ownDir(setup.dir);
  ownDir(dirname(setup.repo.bareDir));

  const cli = async (args: string[], env: Record<string, string> = {}, timeoutMs = 180_000): Promise<CliRun> => {
    const startedAt = now();
    const child = execa('node', [cliPath(), '--config', setup.configPath, ...args], {
      reject: false,
      stdin: 'ignore',
      env: { ...shims.env, ...env },
      extendEnv: true,
      timeout: timeoutMs,
    });
    void track(child, child); // awaited below
    const result = await child;
    const endedAt = now();
    return {
      code: result.exitCode ?? -1,
      stdout: String(result.stdout),
      stderr: String(result.stderr),
      startedAt,
      endedAt,
      wallMs: endedAt - startedAt,
    };
  };

  return {
    name: options.name,
    setup,
    shims,
    appLog,
    initialTag,
    cli,
    tag: (name, files = {}) => setup.repo.tag(name, { VERSION: `${name}\n`, ...files }),
    // What ran, read afresh as another process would.
    records: async () => (await new AppJournal(setup.app.name, setup.app.paths.journal).all()).filter((d) => d.pid !== null),
    appEvents: () => readAppEvents(appLog),
  };
}

export async function readAppEvents(appLog: string): Promise<AppEvent[]> {
  if (!existsSync(appLog)) return [];
  const lines = (await readFile(appLog, 'utf8')).split('\n').filter((l) => l.trim());
  return lines.map((l) => JSON.parse(l) as AppEvent);
}

/** Run a CLI command and fail loudly: the benchmark must never report numbers of a broken run. */
export async function mustCli(env: DuetEnv, args: string[]): Promise<CliRun> {
  const run = await env.cli(args);
  if (run.code !== 0) {
    throw new Error(`duet ${args.join(' ')} (${env.name}) exited ${run.code}:\n${run.stderr.trim().split('\n').slice(-15).join('\n')}`);
  }
  return run;
}
