import { rm } from 'node:fs/promises';
import type { Config, AppConfig } from '../config/load.js';
import { failedStateOf } from '../error-kinds.js';
import { describeError, DiskFullError, DuetError, InternalError, isDiskFull, isSystemError, machineError, type RunStep } from '../errors.js';
import { compactJournal } from './journal-compaction.js';
import { DeployLog, deployLogPath } from './deploy-log.js';
import { appJournal, type AppJournal } from './app-journal.js';
import { newDeployId, type DeployKind, type RunEvent } from './journal.js';
import type { DeployObserver } from './observer.js';
import { crashPoint } from '../util/crash-point.js';
import { readEnvFiles, secretValues } from '../instance/app-env.js';
import { SecretMask } from '../util/mask.js';
import type { Color } from '../config/schema.js';
import type { InstanceRecord } from '../instance/pidfile.js';

export interface StepResult<T> {
  value: T;
  /** The machine was already in the state this step produces. */
  skipped?: boolean;
  detail?: string;
}

/**
 * What a run learned of the machine, carried from step to step instead of read again: it holds
 * the app's lock, so only its own steps change these, and they update them. A run begins with
 * none, so a run resumed after a crash reads the machine at each step.
 */
interface Carried {
  /** What nginx points at, once read (null: nothing yet); the switch steps keep it current. */
  live?: Color | null;
  /** The color this run makes live, and its instance as the start step left it. */
  target?: { color: Color; instance: InstanceRecord };
}

/**
 * One operation in progress (operation.ts): it journals every step's start and end, writes the
 * deploy log, tells the observer, and implements fault injection for the crash tests.
 */
export class DeployRun {
  readonly id: string;
  readonly journal: AppJournal;
  readonly log: DeployLog;
  readonly carried: Carried = {};
  private readonly startedAt = Date.now();
  /** The env files' values, masked in the deploy log and in every error this run ends with. */
  private mask = new SecretMask();

  constructor(
    readonly config: Config,
    readonly app: AppConfig,
    readonly kind: DeployKind,
    readonly observer: DeployObserver,
    /** Given when the id was handed out before the run (a queued trigger); else a new one. */
    id?: string,
  ) {
    this.id = id ?? newDeployId();
    this.journal = appJournal(config, app.name);
    this.log = new DeployLog(deployLogPath(app, this.id));
  }

  async begin(ref: string | null, reason?: string): Promise<void> {
    // Under the app's lock: the only run appending, some twenty lines on one handle.
    this.journal.hold();
    // An env file that cannot be read here fails the step that needs it (update, start), with the reason.
    const files = await readEnvFiles(this.app, 'update').catch(() => undefined);
    if (files) {
      this.mask = new SecretMask(secretValues(files));
      this.log.maskValues(secretValues(files));
    }
    await this.closeInterrupted();
    this.log.line(`${this.kind} ${this.id} of ${this.app.name}${ref ? ` (ref ${ref})` : ''} by pid ${process.pid}${reason ? `: ${reason}` : ''}`);
    await this.event({ type: 'begin', kind: this.kind, ref, pid: process.pid, ...(reason ? { reason } : {}) });
  }

  async fact(fact: { sha?: string; resolvedRef?: string; from?: string | null; to?: string }): Promise<void> {
    await this.event({ type: 'fact', ...fact });
  }

  async step<T>(name: RunStep, what: string, work: () => Promise<StepResult<T>>): Promise<T> {
    const started = Date.now();
    this.observer.stepStarted(name, what);
    this.log.line(`step ${name}: ${what}`);
    await this.event({ type: 'step', step: name, status: 'started' }, name);
    crashPoint(`before:${name}`);
    let result: StepResult<T>;
    try {
      result = await work();
    } catch (error) {
      this.maskError(error);
      const ms = Date.now() - started;
      const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
      this.log.line(`step ${name} failed after ${ms} ms: ${error instanceof Error ? error.message : String(error)}`);
      // The step's own error is what the deploy ends with, even when this line cannot be written.
      await this.eventOrNote({ type: 'step', step: name, status: 'failed', ms, detail });
      this.observer.stepEnded(name, 'failed', ms, detail);
      if (error instanceof DuetError) throw error;
      // What the machine refused is the step's failure; anything else is a bug of duet's own.
      if (isSystemError(error)) throw machineError(name, error, this.config.stateDir);
      if (error instanceof Error && error.stack) this.log.write(`${error.stack}\n`);
      throw new InternalError(name, error);
    }
    const ms = Date.now() - started;
    const status = result.skipped ? 'skipped' : 'done';
    this.log.line(`step ${name} ${status} in ${ms} ms${result.detail ? `: ${result.detail}` : ''}`);
    await this.event({ type: 'step', step: name, status, ms, ...(result.detail ? { detail: result.detail } : {}) }, name);
    this.observer.stepEnded(name, status, ms, result.detail);
    crashPoint(`after:${name}`);
    return result.value;
  }

  async end(result: 'success' | 'noop' | 'failed', error?: unknown): Promise<void> {
    const outcome = result === 'failed' ? failedStateOf(error) : result;
    const failedStep = error instanceof DuetError ? error.step : undefined;
    const message = error instanceof Error ? error.message : error === undefined ? undefined : describeError(error);
    this.log.line(`${this.kind} ${outcome} after ${Date.now() - this.startedAt} ms${message ? `: ${message}` : ''}`);
    if (this.log.lost) this.observer.note(`the deploy log ${this.log.path} is incomplete: ${this.log.lost.message}`);
    try {
      // The outcome is decided: a journal that cannot take its line (a full disk) does not change
      // it. The next lock holder closes the record as interrupted.
      await this.eventOrNote({ type: 'end', outcome, ...(message ? { error: message } : {}), ...(failedStep ? { failedStep } : {}) });
    } finally {
      await this.journal.release();
      this.log.close();
    }
    // Still under the app's lock, so no other writer: the journal is kept to its recent deploys.
    try {
      for (const id of await compactJournal(this.config, this.journal)) await rm(deployLogPath(this.app, id), { force: true });
    } catch (compactError) {
      this.observer.note(`the journal was not compacted: ${(compactError as Error).message}`);
    }
  }

  /**
   * An error's message may quote what an install or the app printed (a log tail): it goes on to
   * the journal, the API, the terminal and GitHub, so the secrets are masked in it here, once.
   */
  private maskError(error: unknown): void {
    if (this.mask.empty || !(error instanceof Error)) return;
    error.message = this.mask.apply(error.message);
    if (error.stack) error.stack = this.mask.apply(error.stack);
  }

  get elapsedMs(): number {
    return Date.now() - this.startedAt;
  }

  /**
   * We hold the lock, so a deploy that never ended belongs to a process that died. A resumed
   * trigger runs under its own id again: its new begin reopens the record, and closing it first
   * would show it as failed to anyone reading in between.
   */
  private async closeInterrupted(): Promise<void> {
    for (const record of await this.journal.unfinished()) {
      if (record.id === this.id) {
        this.log.line(`resuming deploy ${record.id}: its process died before it finished; this run converges from where it stopped`);
        continue;
      }
      this.log.line(`closing deploy ${record.id}: its process died before it finished; this run converges from where it stopped`);
      await this.journal.append({ type: 'end', id: record.id, at: new Date().toISOString(), outcome: 'interrupted' });
    }
  }

  /**
   * A run goes no further than its journal: a step it cannot record (a full disk) fails the
   * deploy there, as the machine refusing, so nothing happens that the journal does not show.
   */
  private async event(event: DistributiveOmit<RunEvent, 'id' | 'at'>, step?: RunStep): Promise<void> {
    try {
      await this.journal.append({ ...event, id: this.id, at: new Date().toISOString() });
    } catch (error) {
      if (isDiskFull(error)) throw new DiskFullError(step, `could not journal the ${event.type} of ${this.kind} ${this.id}`, this.config.stateDir, error);
      throw new DuetError(`could not journal the ${event.type} of ${this.kind} ${this.id} in ${this.journal.path}: ${describeError(error)}`, {
        step,
        cause: error,
        hint: `free space on the disk holding ${this.journal.path} (df -h), then deploy again: it converges from what the machine shows`,
      });
    }
  }

  private async eventOrNote(event: DistributiveOmit<RunEvent, 'id' | 'at'>): Promise<void> {
    try {
      await this.journal.append({ ...event, id: this.id, at: new Date().toISOString() });
    } catch (error) {
      const note = `could not journal the ${event.type === 'end' ? 'end' : 'failed step'} of ${this.id} in ${this.journal.path}: ${describeError(error)}`;
      this.log.line(note);
      this.observer.note(note);
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
