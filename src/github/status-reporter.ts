import { randomUUID } from 'node:crypto';
import type { Octokit } from '@octokit/rest';
import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import type { Deploy } from '../pipeline/deploy-state.js';
import type { TriggerObserver } from '../pipeline/trigger.js';
import { deliverReport, type DeploymentIds } from './deliver.js';
import { idleLane, OutboxDelivery, type Lane as DeliveryLane, type Tried } from '../util/outbox-delivery.js';
import { githubOutboxWriter, readOutbox, type OutboxRecord } from './outbox.js';
import { Pacer } from './pacer.js';
import { deploymentReport, failoverReports, reportKey, resolveTarget, statusReport, type Failover } from './reports.js';
import type { Phase, Report } from './reports.js';

interface StatusReporterOptions {
  config: Config;
  client: Octokit;
  logger: Logger;
  /** ndjson outbox, e.g. <state_dir>/github-outbox.ndjson. */
  outboxPath: string;
  /** First retry delay; doubles per failure up to 5 minutes. */
  retryBaseMs?: number;
  /** The window writes_per_minute is counted in (PACE_WINDOW_MS; shorter in tests). */
  paceWindowMs?: number;
}

interface Entry {
  seq: number;
  id: string;
  key: string;
  report: Report;
}

/** The reports of one key, delivered one at a time so a late "pending" never overwrites "success". */
interface Lane extends DeliveryLane<Entry> {
  key: string;
}

/**
 * Reports each trigger's progress as a commit status (and, when configured, a GitHub Deployment).
 * It never blocks or fails a deploy: the observer methods only enqueue, delivery runs in the
 * background, failures are logged and retried, and the outbox file carries undelivered reports
 * across a restart.
 */
export class GitHubStatusReporter implements TriggerObserver {
  private readonly config: Config;
  private readonly client: Octokit;
  private readonly logger: Logger;
  private readonly outboxPath: string;
  private readonly delivery: OutboxDelivery<OutboxRecord, Entry, Lane>;
  /** Every request to GitHub waits its turn here: serial, and within writes_per_minute. */
  private readonly pacer: Pacer;
  /** Deployment ids per deployment key; kept until a final status is delivered. */
  private readonly deployments = new Map<string, number>();
  private readonly deploymentIds: DeploymentIds = {
    get: (key) => this.deployments.get(key),
    made: (key, deploymentId) => {
      this.deployments.set(key, deploymentId);
      this.delivery.write({ op: 'deployment', key, deploymentId });
    },
    closed: (key) => this.deployments.delete(key),
  };
  /** Triggers that started here with deployments on: their end must close the deployment. */
  private readonly deployingTriggers = new Set<string>();

  constructor(options: StatusReporterOptions) {
    this.config = options.config;
    this.client = options.client;
    this.logger = options.logger.child({ component: 'github-status' });
    this.outboxPath = options.outboxPath;
    this.pacer = new Pacer(this.config.github.writes_per_minute, options.paceWindowMs);
    const outbox = githubOutboxWriter(options.outboxPath, this.logger);
    this.delivery = new OutboxDelivery(new Map<string, Lane>(), outbox, this.logger, options.retryBaseMs ?? 1000, {
      name: 'github',
      items: 'reports',
      tryFirst: (lane, attempt) => this.tryFirst(lane, attempt),
      doneRecord: (entry) => ({ op: 'done', key: entry.key, id: entry.id }),
      // What a restart still needs: the ids of deployments in progress (their final status must go to the same one).
      compacted: () => [...this.deployments].map(([key, deploymentId]): OutboxRecord => ({ op: 'deployment', key, deploymentId })),
      describe: (lane) => ({ key: lane.key }),
      // A key's lane lives while it has reports to send: keys come and go with commits.
      stopped: (lane) => {
        if (lane.entries.length === 0 && this.delivery.lanes.get(lane.key) === lane) this.delivery.lanes.delete(lane.key);
      },
    });
  }

  queued(trigger: Deploy): void {
    this.observe(trigger, 'queued', null);
  }

  waiting(trigger: Deploy, progress: string): void {
    this.observe(trigger, 'waiting', null, progress);
  }

  started(trigger: Deploy, color: string | null): void {
    this.observe(trigger, 'started', color);
  }

  finished(trigger: Deploy): void {
    this.observe(trigger, 'finished', trigger.color);
  }

  /**
   * duet serve failed the app over to its standby. The commit that is no longer live gets an
   * `error` status saying so and why, the commit that serves again a `success` one, and with
   * `github.deployments` the environment gets a Deployment of it.
   */
  failedOver(app: AppConfig, failover: Failover, reason: string): void {
    try {
      for (const report of failoverReports(this.config, app, failover, reason)) this.enqueue(report);
    } catch (error) {
      this.logger.error({ app: app.name, error: String(error) }, 'github: could not queue the failover report');
    }
  }

  /** Resolves when every report queued so far was delivered or given up on, or after timeoutMs. */
  flush(timeoutMs?: number): Promise<void> {
    return this.delivery.flush(timeoutMs);
  }

  /**
   * Re-send what the outbox holds from before a restart: per key, only the newest report. Call it
   * once at startup; until it has run the outbox is only appended to, never compacted.
   */
  resume(): Promise<void> {
    // Reports of this process are in the file first: a key it already reported then reads as
    // delivered (or is in a lane) and the older state from before the restart is not re-sent.
    return this.delivery.resume(async () => {
      const contents = await readOutbox(this.outboxPath, this.logger);
      for (const [key, deploymentId] of contents.deployments) {
        if (!this.deployments.has(key)) this.deployments.set(key, deploymentId);
      }
      let replayed = 0;
      for (const [key, { id, report }] of contents.pending) {
        // A report enqueued by this process already is newer than anything from before the restart.
        if (this.delivery.lanes.has(key)) continue;
        this.push({ seq: this.delivery.nextSeq(), id, key, report });
        replayed += 1;
      }
      if (replayed > 0) this.logger.info({ replayed }, 'github: re-sending reports left undelivered before the restart');
    });
  }

  /** Stops delivering (shutdown, tests). Undelivered reports stay in the outbox for resume(). */
  close(): Promise<void> {
    this.pacer.close();
    return this.delivery.close();
  }

  private observe(trigger: Deploy, phase: Phase, color: string | null, progress?: string): void {
    try {
      const resolved = resolveTarget(this.config, trigger);
      if ('skip' in resolved) {
        this.logger.info({ trigger: trigger.id, app: trigger.app, phase }, `github: no commit status: ${resolved.skip}`);
        return;
      }
      const status = statusReport(trigger, resolved.target, phase, color, progress);
      this.enqueue(status);
      if (!this.config.github.deployments || phase === 'queued' || phase === 'waiting') return;
      const deployment = deploymentReport(status, resolved.target);
      const key = reportKey(deployment);
      if (phase === 'started') {
        this.deployingTriggers.add(trigger.id);
        this.enqueue(deployment);
      } else if (this.deployingTriggers.delete(trigger.id) || this.deployments.has(key) || trigger.startedAt !== null) {
        // A trigger superseded while still queued never had a deployment; one that started did,
        // perhaps in the process before a restart (its id is then known from the outbox).
        this.enqueue(deployment);
      }
    } catch (error) {
      // Reporting is a side show: whatever goes wrong here must not reach the deploy.
      this.logger.error({ trigger: trigger.id, error: String(error) }, 'github: could not queue a report');
    }
  }

  private enqueue(report: Report): void {
    if (this.delivery.closed) return;
    const entry: Entry = { seq: this.delivery.nextSeq(), id: randomUUID(), key: reportKey(report), report };
    this.delivery.write({ op: 'enqueue', key: entry.key, id: entry.id, report });
    this.push(entry);
  }

  private push(entry: Entry): void {
    let lane = this.delivery.lanes.get(entry.key);
    if (!lane) {
      lane = { key: entry.key, ...idleLane<Entry>() };
      this.delivery.lanes.set(entry.key, lane);
    }
    this.delivery.push(lane, entry);
  }

  private async tryFirst(lane: Lane, attempt: number): Promise<Tried> {
    // Chosen when its turn comes, not before: what queued up meanwhile (a trigger's pending,
    // then its superseded, within one burst of pushes) is sent as its newest state only.
    const outcome = await this.pacer.turn(async () => {
      this.coalesce(lane);
      const next = lane.entries[0]!;
      const outcome = await deliverReport(this.client, next.key, next.report, this.deploymentIds, this.logger, attempt);
      // Within the turn, so that no other request starts before the pause does.
      if (typeof outcome === 'object' && outcome.retry !== undefined) this.pacer.pause(outcome.retry);
      return outcome;
    });
    return outcome === undefined || typeof outcome === 'object' ? outcome : 'settled';
  }

  /** Only the newest state of a key is worth a request: the ones before it are history nobody would see. */
  private coalesce(lane: Lane): void {
    for (const dropped of lane.entries.splice(0, lane.entries.length - 1)) this.delivery.settle(dropped);
  }
}
