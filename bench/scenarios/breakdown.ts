import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { API_TOKEN } from '../../test/support/serve.js';
import { analyzeDeploy, findRecord, type DeployBreakdown } from '../lib/analyze.js';
import type { Scope } from '../lib/cleanup.js';
import { mustCli, now, type DuetEnv } from '../lib/duet-env.js';
import { firstAnswerBy, startPoller } from '../lib/http.js';
import { log } from '../lib/log.js';
import { startDuetServe } from '../lib/servers.js';
import { readChildCalls } from '../lib/shims.js';
import { median } from '../lib/stats.js';

/**
 * Section 2: where one deploy's time goes, and a rollback to the warm standby. Measured on an
 * otherwise idle setup (no load generator), while a tight probe loop watches the public port.
 */

export interface BreakdownResult {
  mode: 'port' | 'socket';
  deploys: DeployBreakdown[];
  rollbacks: DeployBreakdown[];
  /** Rollbacks asked of a running `duet serve` (no CLI start-up), there and back. */
  apiRollbacks: ApiRollback[];
  /** Medians over the repetitions. */
  summary: {
    overheadMs: number | null;
    overheadWithCliMs: number | null;
    cliOutsideJournalMs: number | null;
    healthyToPublicMs: number | null;
    rollbackCliMs: number | null;
    rollbackJournalMs: number | null;
    rollbackHealthyToPublicMs: number | null;
    deployCliMs: number | null;
    deployJournalMs: number | null;
    apiRollbackMs: number | null;
  };
}

export interface ApiRollback {
  /** From sending POST /apps/<app>/rollback to the first answer of the previous version on the public port. */
  endToEndMs: number | null;
  /** Until the 202. */
  ackMs: number;
  journalTotalMs: number | null;
}

/**
 * A rollback the way an operator's script or a chat-ops button asks for one: an HTTP request to
 * the `duet serve` that already runs, timed until the public port answers with `version`.
 */
async function apiRollback(env: DuetEnv, baseUrl: string, version: string): Promise<ApiRollback> {
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  // As a chat-ops button would: name the commit the rollback undoes, the one the status shows live.
  const status = (await (await fetch(`${baseUrl}/apps/${env.setup.app.name}/status`, { headers: auth })).json()) as {
    enabled: 'blue' | 'green';
    colors: Record<string, { revision: string }>;
  };
  const from = status.colors[status.enabled]!.revision;
  const poller = startPoller(env.setup.listenPort);
  const sentAt = now();
  let id: string;
  try {
    const answer = await fetch(`${baseUrl}/apps/${env.setup.app.name}/rollback`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ from }),
    });
    if (answer.status !== 202) throw new Error(`POST rollback answered ${answer.status}: ${await answer.text()}`);
    id = ((await answer.json()) as { deploy: string }).deploy;
  } catch (error) {
    await poller.stop();
    throw error;
  }
  const ackMs = now() - sentAt;
  const finished = await pollUntil(
    async () => {
      const view = (await (await fetch(`${baseUrl}/deploys/${id}`, { headers: { ...auth, accept: 'application/json' } })).json()) as {
        finishedAt: string | null;
        state: string;
      };
      return view.finishedAt ? view : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 50 },
  );
  const probes = await poller.stop();
  if (finished?.state !== 'succeeded') throw new Error(`API rollback ${id} ended ${finished?.state ?? 'not at all within 60 s'}`);
  const first = firstAnswerBy(probes, version, sentAt);
  const record = (await env.records()).find((r) => r.id === id);
  return { endToEndMs: first ? first.answeredAt - sentAt : null, ackMs, journalTotalMs: record?.totalMs ?? null };
}

/** How `duet serve` is reached, and how many times to roll back there and back through it. */
export interface ServeRollbacks {
  scope: Scope;
  port: number;
  rounds: number;
}

/**
 * Start `duet serve` on the env's config (server.listen: 127.0.0.1:<port>), roll back there and
 * back `rounds` times. The first request of a fresh serve is the slowest (its code runs for the
 * first time); it is one sample of the median like the others, not thrown away.
 */
async function apiRollbacks(env: DuetEnv, serve: ServeRollbacks, versions: [string, string]): Promise<ApiRollback[]> {
  const server = await startDuetServe(serve.scope, env.setup.configPath, serve.port, join(env.setup.dir, 'serve-rollback.log'));
  const baseUrl = `http://127.0.0.1:${serve.port}`;
  try {
    const results: ApiRollback[] = [];
    for (const version of Array.from({ length: serve.rounds }, () => versions).flat()) {
      const result = await apiRollback(env, baseUrl, version);
      results.push(result);
      log(
        `  API rollback to ${version}: ${result.endToEndMs?.toFixed(0) ?? 'n/a'} ms to the public port (202 after ${result.ackMs.toFixed(1)} ms, journal ${result.journalTotalMs} ms)`,
      );
    }
    return results;
  } finally {
    await server.stop();
  }
}

/** One CLI command (deploy or rollback) with the public port watched, analysed. */
export async function measured(env: DuetEnv, args: string[], kind: 'deploy' | 'rollback', version: string): Promise<DeployBreakdown> {
  const poller = startPoller(env.setup.listenPort);
  const run = await mustCli(env, args).finally(() => poller.stop());
  const probes = await poller.stop();
  const record = findRecord(await env.records(), run, kind);
  if (record.outcome !== 'success') throw new Error(`${kind} ${args.join(' ')} ended ${record.outcome}: ${record.error}`);
  return analyzeDeploy({
    run,
    record,
    calls: await readChildCalls(env.shims),
    calibration: env.shims.calibration,
    appEvents: await env.appEvents(),
    version,
    probes,
  });
}

/**
 * `reps` times: deploy a new version (tags made beforehand), then roll back to the previous one,
 * which the standby color still runs (standby: keep). Starts from `live` being served.
 */
export async function runBreakdown(env: DuetEnv, mode: 'port' | 'socket', tags: string[], live: string, serve: ServeRollbacks): Promise<BreakdownResult> {
  const deploys: DeployBreakdown[] = [];
  const rollbacks: DeployBreakdown[] = [];
  for (const tag of tags) {
    const deployed = await measured(env, ['deploy', '--ref', tag], 'deploy', tag);
    deploys.push(deployed);
    log(
      `  ${mode}: deploy ${tag} ${deployed.cliWallMs.toFixed(0)} ms (journal ${deployed.journalTotalMs} ms, overhead ${deployed.overheadMs?.toFixed(0)} ms, ` +
        `healthy->public ${deployed.healthyToPublicMs?.toFixed(1) ?? 'n/a'} ms)`,
    );
    const back = await measured(env, ['rollback'], 'rollback', live);
    rollbacks.push(back);
    log(`  ${mode}: rollback to ${live} ${back.cliWallMs.toFixed(0)} ms (journal ${back.journalTotalMs} ms)`);
    // `live` serves again; the next deploy goes to the other color, which still runs `tag`.
  }
  // To the last deploy's version and back, so `live` serves afterwards as before.
  const api = await apiRollbacks(env, serve, [tags.at(-1)!, live]);
  return {
    mode,
    deploys,
    rollbacks,
    apiRollbacks: api,
    summary: {
      overheadMs: median(deploys.map((d) => d.overheadMs)),
      overheadWithCliMs: median(deploys.map((d) => d.overheadWithCliMs)),
      cliOutsideJournalMs: median(deploys.map((d) => d.cliOutsideJournalMs)),
      healthyToPublicMs: median(deploys.map((d) => d.healthyToPublicMs)),
      rollbackCliMs: median(rollbacks.map((d) => d.cliWallMs)),
      rollbackJournalMs: median(rollbacks.map((d) => d.journalTotalMs)),
      rollbackHealthyToPublicMs: median(rollbacks.map((d) => d.healthyToPublicMs)),
      deployCliMs: median(deploys.map((d) => d.cliWallMs)),
      deployJournalMs: median(deploys.map((d) => d.journalTotalMs)),
      apiRollbackMs: median(api.map((r) => r.endToEndMs)),
    },
  };
}
