import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { failedStateOf } from '../error-kinds.js';
import { NotSavedError, ShuttingDownError, UnknownAppError } from '../errors.js';
import { Announcements } from './announcements.js';
import { CheckWaits, type ChecksGate } from './check-wait.js';
import { blank, isPending, type Deploy } from './deploy-state.js';
import { newDeployId } from './journal.js';
import { notStarted, outcomeOfRun, runTrigger, withCommit } from './queue-run.js';
import { rollbackPossible } from './rollback.js';
import { TriggerStore, triggerStoreFiles, type TriggerChange, type TriggerStoreFiles } from './trigger-store.js';
import { coversSameDeploy, type SubmitResult, type TriggerObserver, type TriggerQueue, type TriggerRequest } from './trigger.js';

/** Per app: one deploy at a time (p-queue, concurrency 1) and at most one trigger waiting. */
interface Lane {
  runner: PQueue;
  waiting: string | undefined;
  running: string | undefined;
}

interface DeployQueueOptions {
  config: Config;
  observers?: TriggerObserver[];
  logger?: Logger;
  /** Reads CI for deploy_on.wait_for_checks (none without a GitHub token). */
  gate?: ChecksGate;
}

/**
 * The deploy queue of `duet serve`. Triggers are durably recorded before they are acknowledged,
 * deploy one at a time per app and in parallel across apps, and coalesce: while an app deploys,
 * a newer trigger replaces the waiting one, which ends as superseded. After a restart the queue
 * converges an interrupted deploy, then runs what was waiting.
 */
export class DeployQueue implements TriggerQueue {
  private readonly store: TriggerStore;
  private readonly lanes = new Map<string, Lane>();
  private readonly announcements: Announcements;
  private closed = false;
  /** Aborted by close(): a deploy still waiting for its app's lock must not hold up shutdown. */
  private readonly stopping = new AbortController();
  /** Superseded-state writes in flight (not awaited by add()); close() waits for them. */
  private readonly superseding = new Set<Promise<void>>();
  private readonly checks: CheckWaits;

  private constructor(
    private readonly options: DeployQueueOptions,
    files: TriggerStoreFiles,
  ) {
    this.store = new TriggerStore(files);
    this.announcements = new Announcements([...(options.observers ?? [])], options.logger);
    const own = { store: this.store, announcements: this.announcements, signal: this.stopping.signal, saveFinal: this.saveFinal.bind(this) };
    this.checks = new CheckWaits({ ...options, ...own, passed: this.enqueue.bind(this), supersede: this.supersede.bind(this) });
  }

  static async open(options: DeployQueueOptions): Promise<DeployQueue> {
    const queue = new DeployQueue(options, await triggerStoreFiles(options.config));
    await queue.store.open();
    await queue.resume();
    return queue;
  }

  addObserver(observer: TriggerObserver): void {
    this.announcements.add(observer);
  }

  async submit(request: TriggerRequest): Promise<SubmitResult> {
    if (this.closed) throw new ShuttingDownError();
    const app = this.app(request.app);
    const seen = this.store.duplicateOf(request);
    if (seen) return { id: seen.id, created: false, reason: seen.reason };
    // Refused at once when another commit is live; rollback() checks again under the app's lock.
    if (request.kind === 'rollback') await rollbackPossible(this.options.config, app, request.fromSha, request.rollbackTo);
    const lane = this.lane(app.name);
    const ids = [this.checks.waitingId(app.name), lane.waiting, lane.running];
    const same = ids.map((id) => id && this.store.get(id)).find((t) => t && coversSameDeploy(t, request));
    if (same) {
      // Recorded, so that it is still a duplicate once `same` no longer waits or runs.
      if (request.deliveryId || request.bodyDigest) await this.store.merge(same.id, request);
      return { id: same.id, created: false, reason: `the same deploy is already ${same.state}` };
    }
    const id = newDeployId();
    const record: Deploy = { ...blank(id, app.name, request.kind), ...request, receivedAt: new Date().toISOString(), resolvedSha: request.sha };
    await this.store.accept(record);
    await this.admit(app, this.store.get(id)!);
    return { id: record.id, created: true };
  }

  get(id: string): Deploy | undefined {
    const record = this.store.get(id);
    return record && { ...record };
  }

  list(options: { app?: string; limit?: number } = {}): Deploy[] {
    return this.store
      .all()
      .filter((r) => options.app === undefined || r.app === options.app)
      .sort((a, b) => b.id.localeCompare(a.id))
      .slice(0, options.limit ?? 50)
      .map((r) => ({ ...r }));
  }

  depth(app?: string): number {
    const lanes = app === undefined ? [...this.lanes.values()] : [this.lanes.get(app)].filter((l) => l !== undefined);
    return lanes.filter((lane) => lane.waiting !== undefined).length;
  }

  wakeChecks = (repo: string, sha: string): number => this.options.gate?.wake?.(repo, sha) ?? 0;

  /** Resolves when nothing runs or waits (tests, shutdown). */
  async drain(): Promise<void> {
    while ([...this.lanes.values()].some((l) => l.running || l.waiting || l.runner.size || l.runner.pending)) {
      await Promise.all([...this.lanes.values()].map((l) => l.runner.onIdle()));
    }
    await Promise.all(this.superseding);
  }

  /** Stop accepting triggers and let the running deploys finish; waiting ones stay recorded. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping.abort();
    await this.checks.close();
    for (const lane of this.lanes.values()) lane.runner.clear();
    await Promise.all([...this.lanes.values()].map((l) => l.runner.onIdle()));
    await Promise.all(this.superseding);
    await this.store.close();
  }

  private app(name: string): AppConfig {
    const app = this.options.config.apps.get(name);
    if (!app) throw new UnknownAppError(name);
    return app;
  }

  private lane(app: string): Lane {
    let lane = this.lanes.get(app);
    if (!lane) {
      lane = { runner: new PQueue({ concurrency: 1 }), waiting: undefined, running: undefined };
      this.lanes.set(app, lane);
    }
    return lane;
  }

  /** A deploy supersedes the one waiting for CI; then it waits for CI itself, or for its turn. */
  private async admit(app: AppConfig, record: Deploy): Promise<void> {
    if (record.kind === 'deploy') await this.checks.supersede(app.name, record);
    if (this.checks.gates(app, record)) this.checks.begin(app, record);
    else await this.enqueue(app, record);
  }

  /** Make `record` the app's waiting trigger, superseding the one that waited before. */
  private async enqueue(app: AppConfig, record: Deploy): Promise<void> {
    const lane = this.lane(app.name);
    const replaced = lane.waiting;
    lane.waiting = record.id;
    if (replaced) {
      // Not awaited: the new trigger is on disk already, which is all its 202 promises. Were duet
      // to stop before this line is written, the replaced trigger is still "queued" on disk, and
      // resume() enqueues both in order, superseding it again.
      const writing = this.supersede(replaced, record);
      this.superseding.add(writing);
      void writing.finally(() => this.superseding.delete(writing));
    } else {
      // One job per waiting slot: it runs whichever trigger waits when its turn comes.
      void lane.runner.add(() => this.guarded(app.name, () => this.runWaiting(app.name)));
    }
    this.announcements.queued(record.id, withCommit(this.store, app, record, this.options.logger));
  }

  private async supersede(replaced: string, by: Deploy): Promise<void> {
    const sha = by.resolvedSha ? by.resolvedSha.slice(0, 7) : (by.ref ?? 'a newer trigger');
    try {
      const finished = await this.store.record(replaced, { type: 'superseded', by: by.id, summary: `Superseded by ${sha}` });
      void this.announcements.finished(finished);
    } catch (error) {
      // It stays "queued" on disk; the next start of duet serve supersedes it again.
      this.options.logger?.error({ deploy: replaced, err: (error as Error).message }, 'could not record a superseded trigger');
    }
  }

  private async runWaiting(name: string): Promise<void> {
    const lane = this.lane(name);
    const id = lane.waiting;
    lane.waiting = undefined;
    if (!id || this.closed) return;
    // The app as the config has it now: a duet.yml reloaded while this waited applies to it.
    const app = this.options.config.apps.get(name);
    if (!app) return this.abandon(this.store.get(id)!);
    lane.running = id;
    try {
      await this.run(app, this.store.get(id)!);
    } finally {
      lane.running = undefined;
    }
  }

  private async run(app: AppConfig, record: Deploy): Promise<void> {
    let current: Deploy;
    try {
      // The color is the run's to pick (deploy.ts, pickedFact), not guessed here.
      current = await this.store.record(record.id, { type: 'dequeued' });
    } catch (error) {
      if (!(error instanceof NotSavedError)) throw error;
      // A deploy whose start is not on disk does not start: nothing it did would be on disk either.
      const summary = notStarted(record, error, this.options.config.stateDir, this.options.logger);
      const finished = await this.saveFinal(record.id, { type: 'settled', state: failedStateOf(error), summary });
      await this.announcements.finished(finished);
      return;
    }
    // "started" names the color the run picked; a run that ended before it picked starts without one.
    let picked: Color | undefined;
    let started: Promise<void> | undefined;
    const announceStarted = (color: Color | undefined) => (started ??= this.announcements.started({ ...current, color: color ?? null }));
    const onPicked = (color: Color) => {
      picked = color;
      void announceStarted(color);
    };
    const outcome = await runTrigger(this.options.config, app, record, { logger: this.options.logger, signal: this.stopping.signal, onPicked });
    // undefined: shutdown came while it waited for its app's lock. Nothing was started: it stays
    // "running" on disk and resume() runs it at the next start.
    if (!outcome) return;
    const finished = await this.saveFinal(record.id, { type: 'settled', ...(picked ? { color: picked } : {}), ...outcome });
    await announceStarted(picked);
    await this.announcements.finished(finished);
  }

  /**
   * Resume after a restart: an interrupted deploy first (it converges), then what waited. Only a
   * run that never ended is interrupted: one whose end the journal has, but not the trigger's
   * settled line (duet serve stopped, or the disk was full, in between), ended as it says, and a
   * deploy shown failed never goes live later on its own.
   */
  private async resume(): Promise<void> {
    const unfinished = this.store
      .all()
      .filter(isPending)
      .sort((a, b) => a.id.localeCompare(b.id));
    const waiting = (r: Deploy) => r.state === 'queued' || r.state === 'waiting_for_checks';
    for (const record of unfinished.filter((r) => !waiting(r))) {
      const lane = this.lane(record.app);
      const app = this.options.config.apps.get(record.app);
      if (!app) {
        await this.abandon(record);
        continue;
      }
      const ended = outcomeOfRun(record);
      if (ended) {
        this.options.logger?.info({ app: record.app, deploy: record.id, state: ended.state }, 'a deploy ended before its outcome was saved: not run again');
        await this.announcements.finished(await this.saveFinal(record.id, { type: 'settled', ...ended }));
        continue;
      }
      this.options.logger?.info({ app: record.app, deploy: record.id }, 'resuming an interrupted deploy');
      void lane.runner.add(() => this.guarded(app.name, () => this.run(app, this.store.get(record.id)!)));
    }
    for (const record of unfinished.filter(waiting)) {
      const app = this.options.config.apps.get(record.app);
      if (app) await this.admit(app, record);
      else await this.abandon(record);
    }
  }

  /** A trigger of an app duet.yml no longer has (removed, then duet serve restarted or reloaded). */
  private async abandon(record: Deploy): Promise<void> {
    const summary = 'internal error: the app is no longer configured';
    await this.announcements.finished(await this.saveFinal(record.id, { type: 'settled', state: 'errored', summary }));
  }

  /** A deploy's outcome, in memory (the summary says so) when the journal cannot take it yet. */
  private async saveFinal(id: string, change: TriggerChange): Promise<Deploy> {
    const { record, error } = await this.store.recordOrMark(id, change);
    if (error) this.options.logger?.error({ app: record.app, deploy: id, err: error.message, hint: error.hint }, 'could not save the state of a deploy');
    return record;
  }

  /**
   * The one place a lane's job ends: whatever a deploy throws that run() did not expect is
   * logged here, never left as an unhandled rejection, which would stop duet serve and every
   * other app's deploys with it.
   */
  private async guarded(app: string, job: () => Promise<void>): Promise<void> {
    try {
      await job();
    } catch (error) {
      this.options.logger?.error({ app, err: error instanceof Error ? error.message : String(error) }, 'deploy job failed');
    }
  }
}
