import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../test/support/ports.js';
import { acquireLock } from '../../src/pipeline/lock.js';
import { WEBHOOK_SECRET } from '../../test/support/serve.js';
import type { Scope } from '../lib/cleanup.js';
import type { DuetEnv } from '../lib/duet-env.js';
import { pacedLoad, type PacedResult } from '../lib/paced-load.js';
import { log } from '../lib/log.js';
import { cpuMs, fsyncProbe, rssMb, sampleRss, waitForNoChildren } from '../lib/proc.js';
import { ensureWebhookTool, startDuetServe, startFloorServer, startWebhookTool, type Server } from '../lib/servers.js';
import { median, percentile } from '../lib/stats.js';
import { signDeliveries, startWrk, type WrkResult } from '../lib/wrk.js';
import { runBurst, type BurstResult } from './webhook-burst.js';
import { drained, pushPayload, pushHeaders, recordedDeliveries, uniqueBodies } from './webhook-deliveries.js';

/**
 * Section 4 (webhook intake) and section 5 (footprint).
 *
 * Every delivery is a signed GitHub push of `main` naming the commit that is already live, each
 * with a body of its own (its delivery id in a field at the end) and so a signature of its own:
 * duet verifies, finds the push is the deploy already waiting, records the delivery durably as
 * merged into it (one fsync'd line) and answers 202. (One body for all would be answered from the
 * body-digest dedupe, which writes nothing: not what a push costs.) While the load runs the benchmark holds the deploy
 * lock (see below), so the queued deploy waits and intake is measured alone. Then a burst of 100
 * pushes of 100 real, different commits shows how the queue coalesces them, deploys running.
 */

export interface WebhookSettings {
  rates: number[];
  stepMs: number;
  /**
   * The step at 200/s, whose p99 has a goal, runs longer: its p99 is then the 20th-worst of 2000
   * answers rather than the 8th-worst of 800, which one stall of the machine can decide.
   */
  goalStepMs: number;
  maxDurationS: number;
  maxConnections: number;
  burst: number;
  wrkScript: string;
  /** How long a server sits idle before its idle RSS is read. */
  idleWaitMs: number;
  /**
   * Wait for the last system's commands to finish after its maximum load, to count their CPU time
   * (--quick does not: `webhook`'s backlog of commands takes seconds; its CPU per ack is then n/a).
   */
  settleAfterLast: boolean;
}

export interface CpuUse {
  /** CPU time of the server process and the children it reaped (webhook's commands) during the step. */
  cpuMs: number | null;
  cpuMsPerAck: number | null;
}

/**
 * duet's own time per delivery, from its log (`ms`: from the request's route to its answer), so a
 * client-side p99 can be told apart from the time duet spent. Null for `webhook`, which logs none.
 */
export interface ServerTime {
  serverP50Ms: number | null;
  serverP99Ms: number | null;
}

export interface IntakeSteps {
  paced: Array<PacedResult & CpuUse & ServerTime>;
  max: WrkResult | null;
  maxCpu?: CpuUse;
}

export interface SystemIntake extends IntakeSteps {
  system: string;
  version?: string;
  rssIdleMb: number | null;
  /** Every acknowledged delivery is in the app's journal (duet only). */
  durable?: { acked: number; recorded: number; missing: number };
}

export interface WebhookResult {
  duet: SystemIntake;
  webhook: SystemIntake | { system: string; skipped: string };
  burst: BurstResult;
  /**
   * The floor: the same paced load at the goal rate, right after duet's step at that rate, against
   * a bare node server that makes one durable append per request (lib/floor-server.ts).
   */
  floor: PacedResult | null;
  /** The peak of duet's RSS sampled every 50 ms through its own paced and maximum loads. */
  duetRssPeakUnderLoadMb: number | null;
  /** One small durable append (open, append, fsync, close) before and after the max loads. */
  fsync: {
    /** Before any load. */
    baseline: { p50Ms: number | null; p99Ms: number | null };
    /** Right before each system's maximum load. */
    beforeMax: Record<string, { p50Ms: number | null; p99Ms: number | null }>;
    after: { p50Ms: number | null; p99Ms: number | null };
  };
}

/**
 * Between two steps: until the server has no child process left (webhook runs a command per
 * delivery, and at high rates those outlast the step; their CPU time counts once they are reaped),
 * then a short pause.
 */
async function settle(server: Server): Promise<void> {
  await waitForNoChildren(server.pid, 15_000);
  await sleep(150);
}

function cpuUsed(server: Server, before: number | null, acks: number): CpuUse {
  const after = cpuMs(server.pid);
  const used = before === null || after === null ? null : after - before;
  return { cpuMs: used, cpuMsPerAck: used === null || acks === 0 ? null : used / acks };
}

/** The rate of the p99 goal (deliveries per second). */
export const GOAL_RATE = 200;
/**
 * Deliveries signed beforehand per second of the closed-loop run: well above any intake measured
 * here (bench/README.md), since a run that runs out is refused.
 */
const SIGNED_PER_S = 10_000;

/**
 * The `ms` duet logged for each delivery whose id starts with `prefix`. Its log reaches the file
 * through a pipe the benchmark copies, so the last lines may lag: read until every acknowledged
 * delivery is there (or 2 s).
 */
async function serverTimes(logPath: string, prefix: string, expected: number): Promise<ServerTime> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const times: number[] = [];
    for (const line of (await readFile(logPath, 'utf8')).split('\n')) {
      if (!line.includes(prefix)) continue;
      try {
        const entry = JSON.parse(line) as { delivery?: string; ms?: number };
        if (entry.delivery?.startsWith(prefix) && typeof entry.ms === 'number') times.push(entry.ms);
      } catch {
        // not a JSON line, or one still being copied
      }
    }
    if (times.length >= expected || Date.now() > deadline) return { serverP50Ms: percentile(times, 50), serverP99Ms: percentile(times, 99) };
    await sleep(50);
  }
}

async function idleRss(pid: number, waitMs: number): Promise<number | null> {
  await sleep(waitMs);
  const samples: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    const value = rssMb(pid);
    if (value !== null) samples.push(value);
    await sleep(100);
  }
  return median(samples);
}

export async function runWebhook(scope: Scope, root: string, env: DuetEnv, settings: WebhookSettings, servePort: number): Promise<WebhookResult> {
  const dir = join(root, 'webhook');
  await mkdir(dir, { recursive: true });
  const fullName = env.setup.app.repo!;
  const liveSha = await env.setup.repo.revParse('main');
  const bodies = uniqueBodies(pushPayload(fullName, liveSha, liveSha));
  const journalPath = env.setup.app.paths.journal;

  log('  starting duet serve');
  const serveLog = join(dir, 'serve.log');
  const serve = await startDuetServe(scope, env.setup.configPath, servePort, serveLog);
  const duetIdle = await idleRss(serve.pid, settings.idleWaitMs);
  log(`  duet serve idle RSS ${duetIdle?.toFixed(1)} MB`);

  const tool = await ensureWebhookTool();
  let webhook: Server | undefined;
  let webhookIdle: number | null = null;
  if (tool.ok) {
    webhook = await startWebhookTool(scope, dir, await freePort());
    webhookIdle = await idleRss(webhook.pid, settings.idleWaitMs);
    log(`  ${tool.version} idle RSS ${webhookIdle?.toFixed(1)} MB`);
  } else {
    log(`  SKIPPED the webhook (adnanh) row: ${tool.note}`);
  }

  // The benchmark holds the app's deploy lock during the intake load, as a long deploy would: the
  // first delivery becomes a trigger whose deploy waits for the lock, every later one is recorded
  // as merged into it. So each delivery costs what intake costs (verify, parse, dedupe, one
  // fsync'd line, 202) and no deploy competes with it; the burst below has deploys running.
  const held = await acquireLock(env.setup.app, { command: 'bench: webhook intake load', wait: false });
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await held.release();
  };
  scope.first(release);

  const floorServer = await startFloorServer(scope, dir, await freePort());
  let floor: PacedResult | null = null;

  const fsyncBaseline = await fsyncProbe(env.setup.config.stateDir);
  const targets: Array<{ name: string; server: Server; path: string }> = [{ name: 'duet', server: serve, path: '/webhook' }];
  if (webhook) targets.push({ name: 'webhook', server: webhook, path: '/hooks/deploy' });
  const steps = new Map<string, IntakeSteps>(targets.map((t) => [t.name, { paced: [], max: null }]));
  const duetAcked = new Set<string>();

  // Each system gets its block: the paced steps at increasing rates, then the maximum. Not
  // interleaved: thousands of process starts (webhook runs a command per delivery) leave the disk
  // slow to fsync for seconds, which would land on duet's next step.
  let wrkAcked = 0;
  const wrkPrefixes: string[] = [];
  const fsyncBeforeMax: Record<string, { p50Ms: number | null; p99Ms: number | null }> = {};
  let duetRssPeakUnderLoadMb: number | null = null;
  for (const target of targets) {
    const rss = target.name === 'duet' ? sampleRss(target.server.pid, 50) : undefined;
    for (const rate of settings.rates) {
      const prefix = `${target.name}-r${rate}-${Date.now().toString(36)}`;
      const template = {
        method: 'POST',
        path: target.path,
        headers: pushHeaders(),
        body: Buffer.alloc(0),
        signedPerRequest: { ...bodies, secret: WEBHOOK_SECRET },
        idHeader: 'x-github-delivery',
        idPrefix: prefix,
      };
      const cpuBefore = cpuMs(target.server.pid);
      const durationMs = rate === GOAL_RATE ? settings.goalStepMs : settings.stepMs;
      const result = await pacedLoad({ port: target.server.port, ratePerS: rate, durationMs, request: template });
      await settle(target.server);
      const cpu = cpuUsed(target.server, cpuBefore, result.acks);
      const server = target.name === 'duet' ? await serverTimes(serveLog, prefix, result.acks) : { serverP50Ms: null, serverP99Ms: null };
      if (target.name === 'duet') for (const id of result.ackedIds) duetAcked.add(id);
      steps.get(target.name)!.paced.push({ ...result, ackedIds: [], ...cpu, ...server });
      const inServer = server.serverP99Ms === null ? '' : ` (in duet: p50 ${server.serverP50Ms?.toFixed(2)} ms p99 ${server.serverP99Ms.toFixed(2)} ms)`;
      log(
        `  ${target.name.padEnd(7)} ${String(rate).padStart(4)}/s: ${result.acks}/${result.sent} acked, ${result.acksPerS.toFixed(0)} acks/s, ` +
          `p50 ${result.p50Ms?.toFixed(2)} ms p99 ${result.p99Ms?.toFixed(2)} ms (from send: p50 ${result.sentP50Ms?.toFixed(2)} ms p99 ${result.sentP99Ms?.toFixed(2)} ms, sent late p99 ${result.sendLateP99Ms?.toFixed(2)} ms)${inServer}, errors ${result.errors} ${JSON.stringify(result.statuses)}, ` +
          `CPU ${cpu.cpuMsPerAck?.toFixed(2) ?? 'n/a'} ms per ack`,
      );
      if (target.name === 'duet' && rate === GOAL_RATE) {
        floor = await pacedLoad({ port: floorServer.port, ratePerS: rate, durationMs, request: { ...template, path: '/', idPrefix: `floor-${prefix}` } });
        log(
          `  floor   ${String(rate).padStart(4)}/s: ${floor.acks}/${floor.sent} acked, from send: p50 ${floor.sentP50Ms?.toFixed(2)} ms p99 ${floor.sentP99Ms?.toFixed(2)} ms`,
        );
        await floorServer.stop();
      }
    }

    // Closed loop at full speed: a body signed beforehand per request (lib/wrk.ts), unique delivery
    // ids. duet's intake is bound by one fsync per delivery, so the disk's fsync latency is taken
    // just before.
    const fsync = await fsyncProbe(env.setup.config.stateDir);
    fsyncBeforeMax[target.name] = fsync;
    log(`  fsync of a small append on this disk: p50 ${fsync.p50Ms?.toFixed(2)} ms, p99 ${fsync.p99Ms?.toFixed(2)} ms`);
    const prefix = `${target.name}-max-${Date.now().toString(36)}`;
    if (target.name === 'duet') wrkPrefixes.push(prefix);
    const signed = join(dir, `${prefix}.signed`);
    await signDeliveries(signed, { ...bodies, secret: WEBHOOK_SECRET, idPrefix: prefix, count: Math.ceil(settings.maxDurationS * SIGNED_PER_S) });
    const wrk = startWrk({
      url: `http://127.0.0.1:${target.server.port}${target.path}`,
      script: settings.wrkScript,
      threads: 1,
      connections: settings.maxConnections,
      timeoutS: 5,
      env: {
        BENCH_BODY_PREFIX: bodies.prefix,
        BENCH_BODY_SUFFIX: bodies.suffix,
        BENCH_SIGNED: signed,
        BENCH_PATH: target.path,
      },
    });
    const cpuBefore = cpuMs(target.server.pid);
    await sleep(settings.maxDurationS * 1000);
    // Its percentiles grid is for merging runs, which this one is not.
    const { quantilesUs: _grid, ...result } = await wrk.stop();
    if (result.exhausted > 0) {
      throw new Error(`wrk ran out of signed deliveries (${result.exhausted} bodies sent again): raise SIGNED_PER_S above ${SIGNED_PER_S}`);
    }
    const acks = Object.entries(result.counts)
      .filter(([status]) => /^2\d\d$/.test(status))
      .reduce((sum, [, c]) => sum + c, 0);
    const last = target === targets.at(-1);
    if (!last || settings.settleAfterLast) await settle(target.server);
    steps.get(target.name)!.max = result;
    steps.get(target.name)!.maxCpu = !last || settings.settleAfterLast ? cpuUsed(target.server, cpuBefore, acks) : { cpuMs: null, cpuMsPerAck: null };
    if (target.name === 'duet') wrkAcked = acks;
    if (rss) {
      const samples = await rss.stop();
      duetRssPeakUnderLoadMb = samples.length ? Math.max(...samples) : null;
    }
    log(
      `  ${target.name.padEnd(7)} max (wrk -c${settings.maxConnections}): ${(acks / result.durationS).toFixed(0)} acks/s, ` +
        `p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms, statuses ${JSON.stringify(result.counts)}, socket errors ${result.socketErrors}, ` +
        `CPU ${steps.get(target.name)!.maxCpu?.cpuMsPerAck?.toFixed(2) ?? 'n/a'} ms per ack`,
    );
  }
  const fsyncAfter = await fsyncProbe(env.setup.config.stateDir);

  // Durability: every delivery duet acknowledged is in the app's journal.
  const recorded = await recordedDeliveries(journalPath);
  // Paced: the exact ids answered 202. wrk: the count (its ids are not reported back), so what is
  // checked is that at least as many of its deliveries are on disk as it saw acknowledged.
  const pacedRecorded = [...duetAcked].filter((id) => recorded.has(id)).length;
  const wrkRecorded = [...recorded].filter((id) => wrkPrefixes.some((p) => id.startsWith(`${p}-`))).length;
  const durable = {
    acked: duetAcked.size + wrkAcked,
    recorded: pacedRecorded + Math.min(wrkRecorded, wrkAcked),
    missing: duetAcked.size - pacedRecorded + Math.max(0, wrkAcked - wrkRecorded),
  };
  log(`  duet durability: ${durable.recorded} of ${durable.acked} acknowledged deliveries found in the journal`);
  await release();
  await drained(journalPath, 60_000);

  // Burst: 100 pushes of 100 different commits, all at once, to the one app.
  const burst = await runBurst(env, serve, settings.burst, journalPath);

  const duet: SystemIntake = { system: 'duet serve', ...steps.get('duet')!, rssIdleMb: duetIdle, durable };
  const other: WebhookResult['webhook'] = webhook
    ? { system: 'webhook (adnanh)', version: tool.ok ? tool.version : undefined, ...steps.get('webhook')!, rssIdleMb: webhookIdle }
    : { system: 'webhook (adnanh)', skipped: tool.ok ? 'not started' : tool.note };
  await serve.stop();
  await webhook?.stop();
  return { duet, webhook: other, burst, floor, duetRssPeakUnderLoadMb, fsync: { baseline: fsyncBaseline, beforeMax: fsyncBeforeMax, after: fsyncAfter } };
}
