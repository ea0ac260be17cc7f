import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHealth } from '../../src/instance/health.js';
import { findRecord } from '../lib/analyze.js';
import { connectionLost, countWindow, failureTimes, firstAnswerAfter, inFlightAt, lastFailureBefore, type WindowCount } from '../lib/answers.js';
import type { Baseline } from '../lib/baseline.js';
import type { Scope } from '../lib/cleanup.js';
import { startClosedLoad, type LoadKind, type RequestRecord } from '../lib/closed-load.js';
import { mustCli, now, readAppEvents, type AppEvent, type DuetEnv } from '../lib/duet-env.js';
import type { NewCommit } from '../lib/git-fast.js';
import { waitForVersion } from '../lib/http.js';
import { log } from '../lib/log.js';
import { isAlive, tcpConnections } from '../lib/proc.js';
import { startDuetServe } from '../lib/servers.js';
import { deathsUnderLoad, type DeathRun, type DeathSettings } from './request-of-death.js';

/**
 * Section 6: the app fails. A. the live instance is killed (kill -9) under load; B. a version
 * that crashes a few seconds after it went live is deployed under load. Each system under the
 * same closed-loop load with a record of every request (closed-load.ts): keep-alive and
 * `Connection: close` clients at the same time, so every failure, and the first answer of the
 * fallback, has its own time.
 */

export interface FailsSettings {
  kills: number;
  /** Clients per kind (keep-alive and `Connection: close` at once). */
  connections: number;
  kinds: LoadKind[];
  /** Load before the kill (or the deploy), and the window's start before the kill. */
  warmMs: number;
  /** The kill's window ends this long after it. */
  afterKillMs: number;
  /** The crashing deploy's window ends this long after duet's deploy returned... */
  duetTailMs: number;
  /** ...and this long after pm2's reload or the naive restart returned (their crash comes after). */
  otherTailMs: number;
  /** C. requests of death under the same load. */
  death: DeathSettings;
}

export interface KillRun {
  pid: number;
  /** duet: the live color killed. */
  color: string | null;
  /** Wall-clock ms of the SIGKILL. */
  killAt: number;
  /** From warmMs before the kill to afterKillMs after it. */
  window: WindowCount;
  /** Established TCP connections the killed process held right before the kill (null: unix sockets). */
  openConnections: number | null;
  /** Client requests sent before the kill and unanswered at it. */
  clientInFlight: number;
  /** Kill → the first answer by the other color (duet only). */
  firstFallbackMs: number | null;
  fallbackAnswers: number;
  /** Kill → the first answer by the killed color again, to a request sent after the kill (duet only). */
  liveBackMs: number | null;
  /** Kill → the restarted process listening, from the app's log (duet serve's or pm2's restart). */
  restartListeningMs: number | null;
  /** Kill → the end of the last failed request in the window. */
  lastFailureMs: number | null;
  /** Kill → the process gone (a zombie: its memory and sockets released), polled every ms. */
  goneMs: number | null;
  /** When the window's failed requests ended, ms from the kill (the first 100). */
  failureTimesMs: number[];
}

export interface CrashRun {
  version: string;
  previous: string;
  startedAt: number;
  endedAt: number;
  wallMs: number;
  /** duet deploy's exit code (pm2 reload's, the naive restart's: 0, or they would have thrown). */
  exitCode: number;
  outcome: string | null;
  failedStep: string | null;
  error: string | null;
  /** From the deploy's start to its end plus the tail. */
  window: WindowCount;
  tailMs: number;
  /** The crashes of the new version within the window, from the app's log. */
  crashes: Array<{ at: number; connections: number | null; pid: number }>;
  /** The first crash → the first answer of the previous version after it (duet). */
  previousAfterCrashMs: number | null;
  /** After the deploy ended: answers per version (duet: only the previous one). */
  versionsAfter: Record<string, number>;
  /** duet: when its switch step ended and when its watch step ended (after switching back), ms from the start. */
  switchMs: number | null;
  watchEndMs: number | null;
  /** When the window's failed requests ended, ms from the deploy's start (the first 100). */
  failureTimesMs: number[];
  /**
   * Of the connections lost (connectionLost), how many ended within 1 s after the switch, and
   * within 1 s after the first crash (duet switches back, a second reload in port mode, within
   * ~200 ms of it).
   */
  lostAfterSwitch: number | null;
  lostAfterCrash: number | null;
}

export interface FailsSystem {
  system: string;
  mode?: 'socket' | 'port';
  kills: KillRun[];
  crash?: CrashRun;
  deaths?: DeathRun;
  /** What went wrong in this system's measurement, if anything (the rest was still measured). */
  problems: string[];
}

export interface FailsResult {
  crashAfterMs: number;
  watchS: number;
  settings: FailsSettings;
  systems: FailsSystem[];
}

/** The crashing version's behaviour.json (bench/app/server.js): exit 1 this long after listening. */
export const CRASH_AFTER_MS = 3000;
/** health.watch_s of the section's duet setups: the default, as installed. */
export const WATCH_S = 10;

/** A commit of the crashing version: its VERSION, and the behaviour.json that makes it crash. */
export function crashingVersion(tag: string): NewCommit {
  return { tag, files: { VERSION: `${tag}\n`, 'behaviour.json': `${JSON.stringify({ crashAfterMs: CRASH_AFTER_MS })}\n` } };
}

/** Who answered a request: the color that was live, the fallback, or unknown (no header). */
type Who = (r: RequestRecord) => 'live' | 'fallback' | undefined;

function duetWho(mode: 'socket' | 'port', liveColor: string): Who {
  return mode === 'socket'
    ? (r) => (r.upstream === 'live' ? 'live' : r.upstream === 'standby' ? 'fallback' : undefined)
    : (r) => (r.color === liveColor ? 'live' : r.color ? 'fallback' : undefined);
}

/**
 * Load, kill -9 `pid` warmMs in, keep loading afterKillMs. The process's TCP connections are read
 * right before the kill (a few ms, nothing else happens in between).
 */
interface Killed {
  records: RequestRecord[];
  killAt: number;
  openConnections: number | null;
  goneMs: number | null;
}

/**
 * Load, kill -9 `pid` warmMs in, keep loading afterKillMs. The process's TCP connections are read
 * right before the kill (`tcp`: false for an app on a unix socket). Until the kernel has torn the
 * process down, its listening socket still queues connections that nobody will answer; when it is
 * gone is polled every ms, to tell that time from nginx's.
 */
async function killUnderLoad(port: number, pid: number, settings: FailsSettings, tcp = true): Promise<Killed> {
  const load = await startClosedLoad({ port, connections: settings.connections, kinds: settings.kinds });
  let killAt: number;
  let openConnections: number | null;
  let goneMs: number | null = null;
  try {
    await sleep(settings.warmMs);
    if (!isAlive(pid)) throw new Error(`pid ${pid} is not running`);
    openConnections = tcp ? tcpConnections(pid) : null;
    killAt = now();
    process.kill(pid, 'SIGKILL');
    while (goneMs === null && now() - killAt < 1000) {
      if (!isAlive(pid)) goneMs = now() - killAt;
      else await sleep(1);
    }
    await sleep(Math.max(0, killAt + settings.afterKillMs + 100 - now()));
  } catch (error) {
    await load.stop().catch(() => {});
    throw error;
  }
  return { records: await load.stop(), killAt, openConnections, goneMs };
}

function killRun(loaded: Killed, pid: number, color: string | null, settings: FailsSettings, who: Who | undefined, events: AppEvent[]): KillRun {
  const { records, killAt } = loaded;
  const to = killAt + settings.afterKillMs;
  // Within the window only: after it, the benchmark restarts the naive app itself.
  const restarted = events.find((e) => e.event === 'listening' && e.listeningAt > killAt && e.listeningAt <= to && (color === null || e.color === color));
  return {
    pid,
    color,
    killAt,
    window: countWindow(records, killAt - settings.warmMs, to),
    openConnections: loaded.openConnections,
    clientInFlight: inFlightAt(records, killAt),
    firstFallbackMs: who ? firstAnswerAfter(records, killAt, (r) => who(r) === 'fallback') : null,
    fallbackAnswers: who ? records.filter((r) => r.endedAt > killAt && r.endedAt <= to && r.status === 200 && who(r) === 'fallback').length : 0,
    liveBackMs: who ? firstAnswerAfter(records, killAt, (r) => who(r) === 'live', true) : null,
    restartListeningMs: restarted && restarted.event === 'listening' ? restarted.listeningAt - killAt : null,
    lastFailureMs: lastFailureBefore(records, killAt, to),
    goneMs: loaded.goneMs,
    failureTimesMs: failureTimes(records, killAt, killAt - settings.warmMs, to),
  };
}

function logKill(system: string, run: KillRun): void {
  const w = run.window;
  const ms = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(1)} ms`);
  log(
    `  ${system}: kill -9 of pid ${run.pid}${run.color ? ` (${run.color})` : ''}: ${w.requests} requests, ${w.failed} failed ${JSON.stringify(w.causes)}; ` +
      `open connections ${run.openConnections ?? 'n/a'}, client in flight ${run.clientInFlight}; first fallback answer ${ms(run.firstFallbackMs)}, ` +
      `live again ${ms(run.liveBackMs)}, restarted listening ${ms(run.restartListeningMs)}, gone after ${ms(run.goneMs)}`,
  );
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

/**
 * A. duet: for each kill a `duet serve` of its own, so that every kill is the first crash its
 * supervision sees (a second exit within 10 minutes is restarted after a 1 s backoff, a third
 * within a minute fails the live color over), then kill -9 of the live color's process.
 */
async function duetKills(scope: Scope, env: DuetEnv, mode: 'socket' | 'port', servePort: number, system: string, settings: FailsSettings): Promise<KillRun[]> {
  const runs: KillRun[] = [];
  for (let i = 0; i < settings.kills; i += 1) {
    const serve = await startDuetServe(scope, env.setup.configPath, servePort, join(env.setup.dir, `serve-fails-${i + 1}.log`));
    try {
      // Its first looks at both colors (every 500 ms): it supervises what runs, not what starts.
      await sleep(1000);
      const live = (await mustCli(env, ['enabled-instance'])).stdout.trim();
      const pid = Number((await mustCli(env, ['pid', live])).stdout.trim());
      const loaded = await killUnderLoad(env.setup.listenPort, pid, settings, mode === 'port');
      const run = killRun(loaded, pid, live, settings, duetWho(mode, live), await env.appEvents());
      runs.push(run);
      logKill(system, run);
      // Serving as before (the killed color restarted and healthy) before the next kill.
      await until(`duet serve restarting ${live}`, async () => {
        const again = await env.cli(['pid', live]);
        return (
          again.code === 0 && Number(again.stdout.trim()) !== pid && (await checkHealth(env.setup.app, live as 'blue' | 'green', 1000)).state === 'healthy'
        );
      });
    } finally {
      await serve.stop();
    }
  }
  return runs;
}

/** How a deploy onto the crashing version ended, as the tool said. */
interface DeployOutcome {
  exitCode: number;
  /** Wall-clock ms of the switch step's end and the watch step's end (duet). */
  switchAt?: number | null;
  watchEndAt?: number | null;
  outcome?: string | null;
  failedStep?: string | null;
  error?: string | null;
  startedAt: number;
  endedAt: number;
}

/** Load, deploy warmMs in, keep loading tailMs after the deploy returned. */
async function crashWindow(
  port: number,
  settings: FailsSettings,
  tailMs: number,
  deploy: () => Promise<DeployOutcome>,
): Promise<{ records: RequestRecord[]; result: DeployOutcome }> {
  const load = await startClosedLoad({ port, connections: settings.connections, kinds: settings.kinds });
  let result: DeployOutcome;
  try {
    await sleep(settings.warmMs);
    result = await deploy();
    await sleep(tailMs + 100);
  } catch (error) {
    await load.stop().catch(() => {});
    throw error;
  }
  return { records: await load.stop(), result };
}

function crashRun(
  version: string,
  previous: string,
  tailMs: number,
  loaded: { records: RequestRecord[]; result: DeployOutcome },
  events: AppEvent[],
): CrashRun {
  const { records, result } = loaded;
  const to = result.endedAt + tailMs;
  const crashes = events.flatMap((e) =>
    e.event === 'crashed' && e.version === version && e.crashAt >= result.startedAt && e.crashAt <= to
      ? [{ at: e.crashAt, connections: e.connections, pid: e.pid }]
      : [],
  );
  const first = crashes[0];
  const after = countWindow(records, result.endedAt, to);
  const { failed: _failed, ...versionsAfter } = after.versions;
  return {
    version,
    previous,
    startedAt: result.startedAt,
    endedAt: result.endedAt,
    wallMs: result.endedAt - result.startedAt,
    exitCode: result.exitCode,
    outcome: result.outcome ?? null,
    failedStep: result.failedStep ?? null,
    error: result.error ?? null,
    window: countWindow(records, result.startedAt, to),
    tailMs,
    crashes,
    previousAfterCrashMs: first ? firstAnswerAfter(records, first.at, (r) => r.version === previous) : null,
    versionsAfter,
    switchMs: result.switchAt ? result.switchAt - result.startedAt : null,
    watchEndMs: result.watchEndAt ? result.watchEndAt - result.startedAt : null,
    failureTimesMs: failureTimes(records, result.startedAt, result.startedAt, to),
    lostAfterSwitch: result.switchAt ? lostWithin(records, result.switchAt) : null,
    lostAfterCrash: first ? lostWithin(records, first.at) : null,
  };
}

const lostWithin = (records: readonly RequestRecord[], at: number, ms = 1000): number =>
  records.filter((r) => connectionLost(r) && r.endedAt >= at && r.endedAt <= at + ms).length;

function logCrash(system: string, run: CrashRun): void {
  const w = run.window;
  log(
    `  ${system}: deploy of ${run.version} (crashes ${CRASH_AFTER_MS / 1000} s after listening): exit ${run.exitCode}${run.failedStep ? ` at ${run.failedStep}` : ''}, ${(run.wallMs / 1000).toFixed(1)} s; ` +
      `${w.requests} requests, ${w.failed} failed ${JSON.stringify(w.causes)}; ${run.crashes.length} crashes (connections ${run.crashes.map((c) => c.connections).join(', ')}); ` +
      `previous version after the crash ${run.previousAfterCrashMs?.toFixed(1) ?? 'n/a'} ms; after the deploy ${JSON.stringify(run.versionsAfter)}; ` +
      `switch at ${run.switchMs?.toFixed(0) ?? 'n/a'} ms, watch ended at ${run.watchEndMs?.toFixed(0) ?? 'n/a'} ms, crash at ${run.crashes[0] ? (run.crashes[0].at - run.startedAt).toFixed(0) : 'n/a'} ms; ` +
      `failures at ${run.failureTimesMs
        .slice(0, 40)
        .map((t) => t.toFixed(0))
        .join(' ')} ms`,
  );
}

/**
 * B. duet: `duet deploy --ref <crashing tag>` under load, no `duet serve` (the watch is the
 * deploy's own): it must fail at `watch` and switch back to the color that was live.
 */
async function duetCrash(env: DuetEnv, crashTag: string, previous: string, settings: FailsSettings): Promise<CrashRun> {
  const loaded = await crashWindow(env.setup.listenPort, settings, settings.duetTailMs, async () => {
    const run = await env.cli(['deploy', '--ref', crashTag]);
    const record = findRecord(await env.records(), run, 'deploy');
    const end = (name: string): number | null => {
      const step = record.steps.find((s) => s.name === name);
      return step ? Date.parse(step.startedAt) + (step.ms ?? 0) : null;
    };
    return {
      exitCode: run.code,
      outcome: record.outcome,
      failedStep: record.failedStep,
      error: record.error?.split('\n')[0] ?? null,
      startedAt: run.startedAt,
      endedAt: run.endedAt,
      switchAt: end('switch'),
      watchEndAt: end('watch'),
    };
  });
  return crashRun(crashTag, previous, settings.duetTailMs, loaded, await env.appEvents());
}

export interface DuetFailsSetup {
  env: DuetEnv;
  mode: 'socket' | 'port';
  system: string;
  servePort: number;
  /** The version live before the crashing deploy, and the crashing one. */
  live: string;
  crashTag: string;
}

export async function duetFails(scope: Scope, setup: DuetFailsSetup, settings: FailsSettings): Promise<FailsSystem> {
  const { env, mode, system } = setup;
  const result: FailsSystem = { system, mode, kills: [], problems: [] };
  result.kills = await duetKills(scope, env, mode, setup.servePort, system, settings);
  // Before the crashing deploy, which leaves the standby stopped: C is measured with it warm.
  result.deaths = await duetDeaths(scope, setup, settings);
  logDeaths(system, result.deaths);
  result.crash = await duetCrash(env, setup.crashTag, setup.live, settings);
  logCrash(system, result.crash);
  if (!(await waitForVersion(env.setup.listenPort, setup.live, 5000)))
    result.problems.push(`the public port does not serve ${setup.live} after the failed deploy`);
  return result;
}

/** C. duet: requests of death with a `duet serve` supervising, until both colors are healthy again. */
async function duetDeaths(scope: Scope, setup: DuetFailsSetup, settings: FailsSettings): Promise<DeathRun> {
  const { env } = setup;
  const serve = await startDuetServe(scope, env.setup.configPath, setup.servePort, join(env.setup.dir, 'serve-deaths.log'));
  try {
    await sleep(1000); // its first looks at both colors
    const live = (await mustCli(env, ['enabled-instance'])).stdout.trim();
    const run = await deathsUnderLoad(env.setup.listenPort, settings.death, () => env.appEvents());
    const healthy = async (color: 'blue' | 'green'): Promise<boolean> => (await checkHealth(env.setup.app, color, 1000)).state === 'healthy';
    await until('both colors healthy after the requests of death', async () => (await healthy('blue')) && (await healthy('green')));
    return { ...run, failedOver: (await mustCli(env, ['enabled-instance'])).stdout.trim() !== live };
  } finally {
    await serve.stop();
  }
}

function logDeaths(system: string, run: DeathRun): void {
  const w = run.window;
  log(
    `  ${system}: ${run.deaths} requests of death ${run.intervalMs} ms apart, answered ${JSON.stringify(run.deathStatuses)}: ` +
      `${w.requests} other requests, ${w.failed} failed ${JSON.stringify(w.causes)}; ${run.crashes} crashes, ${run.restarts} restarts; ` +
      `last failure ${run.lastFailureAfterMs?.toFixed(0) ?? 'n/a'} ms after the last death; failover: ${run.failedOver ?? 'n/a'}`,
  );
}

export interface BaselineFailsSetup {
  baseline: Baseline;
  appLog: string;
  good: string;
  crashTag: string;
}

/** The naive setup: kill -9 of its one process (nothing restarts it), then a restart onto the crashing version. */
export async function naiveFails(setup: BaselineFailsSetup, system: string, settings: FailsSettings): Promise<FailsSystem> {
  const { baseline } = setup;
  const result: FailsSystem = { system, kills: [], problems: [] };
  await baseline.naive.start();
  try {
    for (let i = 0; i < settings.kills; i += 1) {
      const pid = baseline.naive.pid();
      if (pid === undefined) throw new Error('the naive app is not running');
      const loaded = await killUnderLoad(baseline.publicPort, pid, settings);
      const run = killRun(loaded, pid, null, settings, undefined, await readAppEvents(setup.appLog));
      result.kills.push(run);
      logKill(system, run);
      // Nothing restarts it: the benchmark does, for the next measurement.
      await baseline.naive.start();
    }
    result.deaths = { ...(await deathsUnderLoad(baseline.publicPort, settings.death, () => readAppEvents(setup.appLog))), failedOver: null };
    logDeaths(system, result.deaths);
    await baseline.naive.start();
    const loaded = await crashWindow(baseline.publicPort, settings, settings.otherTailMs, async () => {
      const startedAt = now();
      await baseline.naive.deploy(setup.crashTag);
      return { exitCode: 0, startedAt, endedAt: now() };
    });
    result.crash = crashRun(setup.crashTag, setup.good, settings.otherTailMs, loaded, await readAppEvents(setup.appLog));
    logCrash(system, result.crash);
  } finally {
    await baseline.naive.stop();
  }
  return result;
}

/** pm2 in cluster mode (2 workers): kill -9 of one worker (pm2 restarts it), then `pm2 reload` onto the crashing version. */
export async function pm2Fails(setup: BaselineFailsSetup, system: string, settings: FailsSettings): Promise<FailsSystem> {
  const { baseline } = setup;
  const result: FailsSystem = { system, kills: [], problems: [] };
  // The naive measurement left the crashing version checked out.
  await baseline.update(setup.good);
  await baseline.pm2.start();
  try {
    for (let i = 0; i < settings.kills; i += 1) {
      await until('pm2 running 2 workers', async () => (await baseline.pm2.workers()).length === 2);
      const [pid] = await baseline.pm2.workers();
      const loaded = await killUnderLoad(baseline.publicPort, pid!, settings);
      const run = killRun(loaded, pid!, null, settings, undefined, await readAppEvents(setup.appLog));
      result.kills.push(run);
      logKill(system, run);
      await until('pm2 restarting the killed worker', async () => {
        const workers = await baseline.pm2.workers();
        return workers.length === 2 && !workers.includes(pid!);
      });
    }
    result.deaths = { ...(await deathsUnderLoad(baseline.publicPort, settings.death, () => readAppEvents(setup.appLog))), failedOver: null };
    logDeaths(system, result.deaths);
    await until('pm2 running 2 workers', async () => (await baseline.pm2.workers()).length === 2);
    const loaded = await crashWindow(baseline.publicPort, settings, settings.otherTailMs, async () => {
      const startedAt = now();
      await baseline.pm2.deploy(setup.crashTag);
      return { exitCode: 0, startedAt, endedAt: now() };
    });
    result.crash = crashRun(setup.crashTag, setup.good, settings.otherTailMs, loaded, await readAppEvents(setup.appLog));
    logCrash(system, result.crash);
  } finally {
    await baseline.pm2.stop();
  }
  return result;
}
