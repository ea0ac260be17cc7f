import { analyzeDeploy, findRecord, type DeployBreakdown } from '../lib/analyze.js';
import { mustCli, type DuetEnv } from '../lib/duet-env.js';
import { startPoller } from '../lib/http.js';
import { log } from '../lib/log.js';
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
  };
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
export async function runBreakdown(env: DuetEnv, mode: 'port' | 'socket', tags: string[], live: string): Promise<BreakdownResult> {
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
  return {
    mode,
    deploys,
    rollbacks,
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
    },
  };
}
