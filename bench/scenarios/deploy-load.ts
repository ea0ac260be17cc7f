import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { Baseline } from '../lib/baseline.js';
import { mustCli, now, type DuetEnv } from '../lib/duet-env.js';
import { log } from '../lib/log.js';
import { mergeWrk, startWrk, type WrkResult } from '../lib/wrk.js';
import { NAIVE, PM2, RELOAD, RELOAD_AMID } from '../systems.js';
import { appConfPath } from '../../src/switch/nginx-conf.js';
import { switchOf } from '../../src/switch/switch.js';
import { writeFileAtomic } from '../../src/util/atomic-file.js';
import { otherColor } from '../../src/config/schema.js';
import { waitForVersion } from '../lib/http.js';

/**
 * Section 1: failed requests while deploying. wrk loads the public port through nginx around each
 * of N consecutive deploys (each a new commit), once with keep-alive clients and once with
 * `Connection: close` clients. One wrk run per deploy (load before it, during it, after it), so
 * that each deploy's failures are known: a keep-alive client's errors during an nginx reload vary
 * a lot from one reload to the next, and only the spread tells a real difference from that noise.
 */

export interface LoadSettings {
  threads: number;
  connections: number;
  /** Load before each deploy and after it. */
  warmMs: number;
  tailMs: number;
  wrkScript: string;
}

/** One deploy (or reload) and what its wrk run counted. */
export interface LoadEvent {
  ms: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

export interface LoadRow {
  system: string;
  connection: ClientKind;
  /** Deploys (or reloads) during the load. */
  events: number;
  /** Wall time of each deploy (or reload). */
  eventMs: number[];
  /** Each deploy's own wrk run, in order. */
  perEvent: LoadEvent[];
  /** The runs of all deploys as one (counts added, latency percentiles of the whole). */
  wrk: WrkResult;
  /** Versions that answered, with counts: proof the deploys switched what users see. */
  versions: Record<string, number>;
  /** Client kinds that loaded the same deploys at the same time (--quick), if any. */
  concurrentWith: ClientKind[];
  extra?: Record<string, unknown>;
}

export type ClientKind = 'keep-alive' | 'close';

interface Loaded {
  eventMs: number[];
  /** Per client kind, one wrk result per event. */
  runs: Map<ClientKind, WrkResult[]>;
}

/**
 * Runs `deploys` one after another, each under its own load: one wrk per client kind, started
 * `warmMs` before the deploy and stopped `tailMs` after it. With two kinds (--quick) both load
 * the same deploys at the same time, each with half the connections.
 */
async function underLoad(url: string, kinds: ClientKind[], settings: LoadSettings, deploys: Array<() => Promise<number>>): Promise<Loaded> {
  const loaded: Loaded = { eventMs: [], runs: new Map(kinds.map((kind) => [kind, []])) };
  for (const deploy of deploys) {
    const runs = kinds.map((kind) => ({
      kind,
      run: startWrk({
        url,
        script: settings.wrkScript,
        threads: Math.max(1, Math.floor(settings.threads / kinds.length)),
        connections: Math.floor(settings.connections / kinds.length),
        env: { BENCH_CONN_CLOSE: kind === 'close' ? '1' : '0' },
      }),
    }));
    try {
      await sleep(settings.warmMs);
      loaded.eventMs.push(await deploy());
      await sleep(settings.tailMs);
    } catch (error) {
      for (const { run } of runs) await run.stop().catch(() => {});
      throw error;
    }
    for (const { kind, run } of runs) loaded.runs.get(kind)!.push(await run.stop());
  }
  return loaded;
}

function rows(system: string, kinds: ClientKind[], loaded: Loaded, extra?: Record<string, unknown>): LoadRow[] {
  return kinds.map((kind) => {
    const runs = loaded.runs.get(kind)!;
    const wrk = mergeWrk(runs);
    const row: LoadRow = {
      system,
      connection: kind,
      events: loaded.eventMs.length,
      eventMs: loaded.eventMs,
      perEvent: runs.map((run, i) => ({ ms: loaded.eventMs[i]!, requests: run.requests, non2xx: run.non2xx, socketErrors: run.socketErrors })),
      wrk,
      versions: versionsOf(wrk),
      concurrentWith: kinds.filter((k) => k !== kind),
      ...(extra ? { extra } : {}),
    };
    log(`  ${summary(row)}`);
    return row;
  });
}

function versionsOf(wrk: WrkResult): Record<string, number> {
  return Object.fromEntries(Object.entries(wrk.counts).filter(([key]) => !key.startsWith('status-')));
}

function summary(row: LoadRow): string {
  const w = row.wrk;
  return (
    `${row.system} ${row.connection}: ${w.requests} requests, non-2xx ${w.non2xx}, socket errors ${w.socketErrors} ` +
    `(connect ${w.errors.connect}, read ${w.errors.read}, write ${w.errors.write}, timeout ${w.errors.timeout}), ` +
    `p50 ${w.p50Ms.toFixed(2)} ms p99 ${w.p99Ms.toFixed(2)} ms; socket errors per event: ${row.perEvent.map((e) => e.socketErrors).join(', ')}`
  );
}

/** duet deploys, each `duet deploy --ref <tag>` run to completion, one after another. */
const httpUrl = (port: number): string => `http://127.0.0.1:${port}/`;

/** Runs `events` one after another, each under its own wrk run against `url`: one row per client kind. */
export async function loadRowsAt(
  url: string,
  system: string,
  kinds: ClientKind[],
  settings: LoadSettings,
  events: Array<() => Promise<number>>,
): Promise<LoadRow[]> {
  return rows(system, kinds, await underLoad(url, kinds, settings, events));
}

export async function duetLoadRows(env: DuetEnv, system: string, tags: string[], kinds: ClientKind[], settings: LoadSettings): Promise<LoadRow[]> {
  const deploys = tags.map((tag) => async () => (await mustCli(env, ['deploy', '--ref', tag])).wallMs);
  return rows(system, kinds, await underLoad(httpUrl(env.setup.listenPort), kinds, settings, deploys));
}

/**
 * A bare `nginx -s reload` of the same nginx (duet's managed one, port mode, same app live), as
 * many times as duet switched, each under its own load like duet's deploys: what nginx alone
 * costs keep-alive clients. The config does not change; a reload starts new workers and retires
 * the old ones either way.
 */
export async function reloadRows(
  env: DuetEnv,
  count: number,
  kinds: ClientKind[],
  settings: LoadSettings,
  at: { url: string; system: string } = { url: httpUrl(env.setup.listenPort), system: RELOAD },
): Promise<LoadRow[]> {
  const [file, ...args] = env.setup.config.nginx.reloadCmd;
  const reloads = Array.from({ length: count }, () => async () => {
    const started = now();
    await execa(file!, args, { stdin: 'ignore' });
    return now() - started;
  });
  return loadRowsAt(at.url, at.system, kinds, settings, reloads);
}

/**
 * The same deploy work as duet's (duet's own `update-instance` and `start-instance` commands on the
 * idle color), but the switch is the benchmark writing the nginx config duet would write and a
 * bare `nginx -s reload`. Same CPU contention around the reload as in duet's row, without duet's
 * switch: the fair reference for "duet adds nothing on top of nginx" (a reload's keep-alive errors
 * grow when the machine is busy).
 */
export async function reloadAmidDeployRows(env: DuetEnv, tags: string[], kinds: ClientKind[], settings: LoadSettings): Promise<LoadRow[]> {
  const { app, config } = env.setup;
  const [file, ...args] = config.nginx.reloadCmd;
  const deploys = tags.map((tag) => async () => {
    const started = now();
    const live = await switchOf(app).configuredColor(config);
    if (!live) throw new Error('nothing is live: the setup deploys first');
    const idle = otherColor(live);
    await mustCli(env, ['update-instance', idle, '--ref', tag]);
    await mustCli(env, ['start-instance', idle]);
    await writeFileAtomic(appConfPath(app, config), await switchOf(app).renderConf(idle));
    await execa(file!, args, { stdin: 'ignore' });
    if (!(await waitForVersion(env.setup.listenPort, tag, 10_000))) throw new Error(`the public port did not serve ${tag} after the reload`);
    return now() - started;
  });
  return rows(RELOAD_AMID, kinds, await underLoad(httpUrl(env.setup.listenPort), kinds, settings, deploys));
}

export async function naiveRows(baseline: Baseline, tags: string[], kinds: ClientKind[], settings: LoadSettings): Promise<LoadRow[]> {
  const downMs: number[] = [];
  const deploys = tags.map((tag) => async () => {
    const result = await baseline.naive.deploy(tag);
    downMs.push(result.downMs);
    return result.totalMs;
  });
  return rows(NAIVE, kinds, await underLoad(httpUrl(baseline.publicPort), kinds, settings, deploys), { downMs });
}

export async function pm2Rows(baseline: Baseline, tags: string[], kinds: ClientKind[], settings: LoadSettings): Promise<LoadRow[]> {
  const deploys = tags.map((tag) => async () => (await baseline.pm2.deploy(tag)).totalMs);
  return rows(PM2, kinds, await underLoad(httpUrl(baseline.publicPort), kinds, settings, deploys));
}
