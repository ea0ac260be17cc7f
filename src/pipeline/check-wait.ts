import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import { otherColor } from '../config/schema.js';
import { resolveRef } from '../instance/checkout.js';
import { switchOf } from '../switch/switch.js';
import type { Announcements } from './announcements.js';
import { updateColor } from './color-acts.js';
import { defaultRef } from './deploy.js';
import type { Deploy } from './deploy-state.js';
import type { TriggerChange, TriggerStore } from './trigger-store.js';

/**
 * deploy_on.wait_for_checks: a trigger that deploys waits for its commit's CI before it takes its
 * place in the queue. It is journaled (`waiting`, then `checked` once CI is green, or settled
 * failed or errored), so a duet serve that stops meanwhile waits again at its next start, the
 * deadline counted from the first `waiting`. At most one trigger of an app waits: a newer deploy
 * supersedes it, as a newer trigger supersedes a queued one.
 */

/** What CI decided: green (it deploys), failed (a check failed) or errored (it did not finish in time). */
export interface ChecksVerdict {
  state: 'green' | 'failed' | 'errored';
  summary: string;
}

/** Asks GitHub (src/github/check-gate.ts); undefined: `signal` ended the wait first. */
export interface ChecksGate {
  /** A webhook said the CI of `sha` changed: the waits on it ask at once. How many were woken. */
  wake?(repo: string, sha: string): number;
  wait(
    app: AppConfig,
    sha: string,
    options: { deadline: number; signal: AbortSignal; progress: (summary: string) => void },
  ): Promise<ChecksVerdict | undefined>;
}

interface CheckWaitsOptions {
  config: Config;
  store: TriggerStore;
  announcements: Announcements;
  /** undefined: no GitHub token, so no CI can be read: a gated trigger errors, saying so. */
  gate?: ChecksGate;
  logger?: Logger;
  /** Ends a shutdown's wait for an app's lock (a prepare). */
  signal: AbortSignal;
  /** CI is green: the trigger takes its place in its app's lane. */
  passed: (app: AppConfig, record: Deploy) => Promise<void>;
  /** Ends a waiting trigger as superseded by `by` (the queue's own supersede). */
  supersede: (id: string, by: Deploy) => Promise<void>;
  /** Writes a trigger's final line, in memory at least (the queue's saveFinal). */
  saveFinal: (id: string, change: TriggerChange) => Promise<Deploy>;
}

interface Wait {
  id: string;
  abort: AbortController;
}

export class CheckWaits {
  private readonly waits = new Map<string, Wait>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly options: CheckWaitsOptions) {}

  /** Whether `record` waits for CI before it deploys: a deploy of a gated app, not told to skip, not checked yet. */
  gates(app: AppConfig, record: Deploy): boolean {
    // One that waited when duet serve stopped waits again, or is let through if the key is gone since.
    if (record.state === 'waiting_for_checks') return true;
    return app.deploy_on.wait_for_checks !== undefined && record.kind === 'deploy' && record.skipChecks !== true && record.checkedSha === null;
  }

  /** The trigger of `app` waiting for CI, if any. */
  waitingId(app: string): string | undefined {
    return this.waits.get(app)?.id;
  }

  /** A newer deploy of `app` was accepted: the one waiting for CI ends superseded. */
  async supersede(app: string, by: Deploy): Promise<void> {
    const wait = this.waits.get(app);
    if (!wait || wait.id === by.id) return;
    this.waits.delete(app);
    wait.abort.abort();
    await this.options.supersede(wait.id, by);
  }

  /** Waits for CI in the background (again, after a restart); the trigger is on disk already. */
  begin(app: AppConfig, record: Deploy): void {
    const wait = { id: record.id, abort: new AbortController() };
    this.waits.set(app.name, wait);
    const job = this.waitFor(app, record, wait).catch((error: unknown) => {
      this.options.logger?.error({ app: app.name, deploy: record.id, err: (error as Error).message }, 'waiting for CI failed');
    });
    this.track(job);
  }

  /** Shutdown: the waits stop (they stay waiting_for_checks on disk), a prepare under way ends. */
  async close(): Promise<void> {
    for (const wait of this.waits.values()) wait.abort.abort();
    this.waits.clear();
    while (this.running.size > 0) await Promise.all(this.running);
  }

  private async waitFor(app: AppConfig, queued: Deploy, wait: Wait): Promise<void> {
    const { store, announcements } = this.options;
    const settings = app.deploy_on.wait_for_checks;
    if (!settings) return this.end(app, wait, { state: 'green', summary: 'deploy_on.wait_for_checks was turned off' });
    let record = queued;
    if (record.state === 'queued') {
      const sha = await this.commitOf(app, record);
      if (sha === undefined || !this.isCurrent(app, wait)) return;
      record = await store.record(record.id, { type: 'waiting', sha });
    }
    const sha = record.resolvedSha!;
    announcements.queued(record.id, Promise.resolve(record));
    if (!this.options.gate) {
      return this.end(app, wait, { state: 'errored', summary: 'wait_for_checks needs a GitHub token (DUET_GITHUB_TOKEN) to read the checks' });
    }
    if (settings.prepare_while_waiting) this.track(this.prepare(app, record, sha));
    let told = '';
    const progress = (summary: string): void => {
      if (summary === told || !this.isCurrent(app, wait)) return;
      told = summary;
      void announcements.waiting(record, summary);
    };
    progress('waiting for CI');
    const deadline = Date.parse(record.checksSince!) + settings.timeout_s * 1000;
    const verdict = await this.options.gate.wait(app, sha, { deadline, signal: wait.abort.signal, progress });
    if (verdict) await this.end(app, wait, verdict);
  }

  /** The verdict, unless the trigger stopped waiting meanwhile (superseded, shutdown). */
  private async end(app: AppConfig, wait: Wait, verdict: ChecksVerdict): Promise<void> {
    if (!this.isCurrent(app, wait)) return;
    this.waits.delete(app.name);
    const { store, logger, announcements } = this.options;
    logger?.info({ app: app.name, deploy: wait.id, verdict: verdict.state }, verdict.summary);
    if (verdict.state === 'green') {
      const record = await store.record(wait.id, { type: 'checked', sha: store.get(wait.id)!.resolvedSha!, summary: verdict.summary });
      return this.options.passed(app, record);
    }
    await announcements.finished(await this.options.saveFinal(wait.id, { type: 'settled', state: verdict.state, summary: verdict.summary }));
  }

  /** The commit CI is asked about: the one the push named, else the ref's tip now. */
  private async commitOf(app: AppConfig, record: Deploy): Promise<string | undefined> {
    if (record.resolvedSha) return record.resolvedSha;
    try {
      return (await resolveRef(app.clone_url, record.ref ?? defaultRef(app))).sha;
    } catch (error) {
      const summary = `resolve failed: ${(error as Error).message.split('\n')[0]}`;
      await this.options.announcements.finished(await this.options.saveFinal(record.id, { type: 'settled', state: 'failed', summary }));
      return undefined;
    }
  }

  /**
   * prepare_while_waiting: the idle color updated and built (update-instance, under the app's
   * lock) while CI runs, so the deploy after green finds it prepared. Never the color that
   * serves; a failure only means the deploy does the work itself.
   */
  private async prepare(app: AppConfig, record: Deploy, sha: string): Promise<void> {
    const { config, logger, signal } = this.options;
    try {
      const live = await switchOf(app).configuredColor(config);
      const idle = live ? otherColor(live) : 'blue';
      await updateColor(config, app, idle, sha, { wait: true, signal, force: false });
      logger?.info({ app: app.name, deploy: record.id, color: idle }, `prepared ${idle} with ${sha.slice(0, 7)} while CI runs`);
    } catch (error) {
      logger?.warn({ app: app.name, deploy: record.id, err: (error as Error).message }, 'could not prepare the idle color while CI runs');
    }
  }

  private isCurrent(app: AppConfig, wait: Wait): boolean {
    return this.waits.get(app.name) === wait && !wait.abort.signal.aborted;
  }

  private track(job: Promise<void>): void {
    this.running.add(job);
    void job.finally(() => this.running.delete(job));
  }
}
