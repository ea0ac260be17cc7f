import { randomUUID } from 'node:crypto';
import type { Octokit } from '@octokit/rest';
import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import type { Deploy } from '../pipeline/deploy-state.js';
import type { TriggerObserver } from '../pipeline/trigger.js';
import { deliverReport, type DeploymentIds } from './deliver.js';
import type { OutboxWriter } from '../util/outbox-writer.js';
import { githubOutboxWriter, readOutbox, type OutboxRecord } from './outbox.js';
import { Pacer } from './pacer.js';
import { Settlements } from './settlements.js';
import { deploymentReport, failoverReports, reportKey, resolveTarget, statusReport, type Failover } from './reports.js';
import type { Phase, Report } from './reports.js';
import { retryWait } from '../util/retry-wait.js';

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
interface Lane {
  key: string;
  entries: Entry[];
  draining: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  wake: (() => void) | undefined;
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
  private readonly retryBaseMs: number;
  private readonly outbox: OutboxWriter<OutboxRecord>;
  private readonly lanes = new Map<string, Lane>();
  /** Every request to GitHub waits its turn here: serial, and within writes_per_minute. */
  private readonly pacer: Pacer;
  /** Deployment ids per deployment key; kept until a final status is delivered. */
  private readonly deployments = new Map<string, number>();
  private readonly deploymentIds: DeploymentIds = {
    get: (key) => this.deployments.get(key),
    made: (key, deploymentId) => {
      this.deployments.set(key, deploymentId);
      this.write({ op: 'deployment', key, deploymentId });
    },
    closed: (key) => this.deployments.delete(key),
  };
  /** Triggers that started here with deployments on: their end must close the deployment. */
  private readonly deployingTriggers = new Set<string>();
  private readonly settlements = new Settlements();
  private seq = 0;
  /** Something was written since the last compaction. */
  private dirty = false;
  private closed = false;
  /** Until resume() has read the file, it holds reports from before a restart: never compact it. */
  private resumed = false;

  constructor(options: StatusReporterOptions) {
    this.config = options.config;
    this.client = options.client;
    this.logger = options.logger.child({ component: 'github-status' });
    this.outboxPath = options.outboxPath;
    this.retryBaseMs = options.retryBaseMs ?? 1000;
    this.outbox = githubOutboxWriter(options.outboxPath, this.logger);
    this.pacer = new Pacer(this.config.github.writes_per_minute, options.paceWindowMs);
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
  async flush(timeoutMs?: number): Promise<void> {
    if (!(await this.settlements.waitFor(this.seq, timeoutMs))) {
      this.logger.warn({ undelivered: this.settlements.size }, 'github: flush timed out; reports stay in the outbox');
    }
    await this.outbox.idle();
  }

  /**
   * Re-send what the outbox holds from before a restart: per key, only the newest report. Call it
   * once at startup; until it has run the outbox is only appended to, never compacted.
   */
  async resume(): Promise<void> {
    // Reports of this process must be in the file first: a key it already reported then reads
    // as delivered (or is in a lane) and the older state from before the restart is not re-sent.
    await this.outbox.idle();
    const contents = await readOutbox(this.outboxPath, this.logger);
    for (const [key, deploymentId] of contents.deployments) {
      if (!this.deployments.has(key)) this.deployments.set(key, deploymentId);
    }
    let replayed = 0;
    for (const [key, { id, report }] of contents.pending) {
      // A report enqueued by this process already is newer than anything from before the restart.
      if (this.lanes.has(key)) continue;
      this.push({ seq: ++this.seq, id, key, report });
      replayed += 1;
    }
    if (replayed > 0) this.logger.info({ replayed }, 'github: re-sending reports left undelivered before the restart');
    this.resumed = true;
    this.dirty = true;
    this.maybeCompact();
  }

  /** Stops delivering (shutdown, tests). Undelivered reports stay in the outbox for resume(). */
  async close(): Promise<void> {
    this.closed = true;
    this.pacer.close();
    for (const lane of this.lanes.values()) {
      clearTimeout(lane.timer);
      lane.wake?.();
    }
    await Promise.all([...this.lanes.values()].map((lane) => lane.draining ?? Promise.resolve()));
    await this.outbox.idle();
    this.settlements.release();
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
    if (this.closed) return;
    const entry: Entry = { seq: ++this.seq, id: randomUUID(), key: reportKey(report), report };
    this.write({ op: 'enqueue', key: entry.key, id: entry.id, report });
    this.push(entry);
  }

  private push(entry: Entry): void {
    let lane = this.lanes.get(entry.key);
    if (!lane) {
      lane = { key: entry.key, entries: [], draining: undefined, timer: undefined, wake: undefined };
      this.lanes.set(entry.key, lane);
    }
    lane.entries.push(entry);
    this.settlements.add(entry.seq);
    if (!lane.draining && !this.closed) lane.draining = this.drain(lane);
  }

  private async drain(lane: Lane): Promise<void> {
    let attempt = 0;
    try {
      while (!this.closed && lane.entries.length > 0) {
        // Chosen when its turn comes, not before: what queued up meanwhile (a trigger's pending,
        // then its superseded, within one burst of pushes) is sent as its newest state only.
        const turn = await this.pacer.turn(async () => {
          this.coalesce(lane);
          const next = lane.entries[0]!;
          const outcome = await deliverReport(this.client, next.key, next.report, this.deploymentIds, this.logger, attempt);
          // Within the turn, so that no other request starts before the pause does.
          if (typeof outcome === 'object' && outcome.retry !== undefined) this.pacer.pause(outcome.retry);
          return { entry: next, outcome };
        });
        if (!turn) break; // closed while waiting for its turn: the outbox keeps the report
        const { entry, outcome } = turn;
        if (typeof outcome === 'object') {
          attempt += 1;
          await this.sleep(lane, attempt, outcome.retry);
          continue;
        }
        attempt = 0;
        lane.entries.shift();
        this.write({ op: 'done', key: entry.key, id: entry.id });
        this.settlements.settle(entry.seq);
      }
    } catch (error) {
      this.logger.error({ key: lane.key, error: String(error) }, 'github: delivery loop failed');
    } finally {
      lane.draining = undefined;
      if (lane.entries.length === 0 && this.lanes.get(lane.key) === lane) this.lanes.delete(lane.key);
      this.maybeCompact();
    }
  }

  /** Only the newest state of a key is worth a request: the ones before it are history nobody would see. */
  private coalesce(lane: Lane): void {
    for (const dropped of lane.entries.splice(0, lane.entries.length - 1)) {
      this.write({ op: 'done', key: dropped.key, id: dropped.id });
      this.settlements.settle(dropped.seq);
    }
  }

  private sleep(lane: Lane, attempt: number, askedMs: number | undefined): Promise<void> {
    return retryWait(lane, { attempt, baseMs: this.retryBaseMs, askedMs, closed: this.closed });
  }

  private write(record: OutboxRecord): void {
    this.dirty = true;
    this.outbox.append(record);
  }

  /**
   * Once nothing is waiting, the outbox is rewritten to what a restart still needs: nothing but
   * the ids of deployments still in progress (their final status must go to the same one).
   */
  private maybeCompact(): void {
    if (!this.resumed || !this.dirty || this.closed || this.lanes.size > 0) return;
    this.outbox.compact(() => {
      if (this.closed || this.lanes.size > 0) return null;
      this.dirty = false;
      return [...this.deployments].map(([key, deploymentId]): OutboxRecord => ({ op: 'deployment', key, deploymentId }));
    });
  }
}
