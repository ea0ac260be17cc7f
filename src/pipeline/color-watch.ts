import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { checkHealthUntilExit, type HealthReport } from '../instance/health.js';
import { readPidfile } from '../instance/pidfile.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { describeExit, runnerOf, type InstanceRecord } from '../instance/runner.js';
import { FailureStreak, WATCH_PROBE_TIMEOUT_MS } from '../instance/watch.js';
import { emptyColorSupervision, type ColorHealth, type ColorSupervision } from './supervision-record.js';

/**
 * Restarts back off per cause: the first restart after a failure comes at once, each further one
 * for the same cause waits twice as long as the one before (1 s, 2 s, 4 s ... up to
 * MAX_RESTART_DELAY_MS), so a version that cannot start costs a few processes a minute, not a
 * storm. Another cause starts the count anew (a crash on start is not the crash a request caused
 * a minute ago), and so does a minute healthy (STABLE_MS).
 */
const STABLE_MS = 60_000;
const MAX_RESTART_DELAY_MS = 60_000;

/** Why a color failed: it could not start, it died after it had served, or it stayed unhealthy. */
type FailureCause = 'start' | 'crash' | 'unhealthy';

function restartDelayMs(failuresInARow: number): number {
  return failuresInARow <= 1 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (failuresInARow - 2));
}

/** What one look at a color found that its owner should know or act on. */
export type Finding =
  | { kind: 'exited'; detail: string }
  | { kind: 'unhealthy'; detail: string }
  /** It answers its health check again (downMs: for how long it had not; undefined: it was not known to be down). */
  | { kind: 'healthy'; downMs: number | undefined }
  | { kind: 'appeared' };

/**
 * One color as duet serve's supervision sees it, probe after probe. It only looks and reports
 * (kamal-proxy's health check reports to its owner the same way); the AppSupervisor decides
 * what to do. The machine is the truth: a color is meant to run while its pidfile exists (every
 * stop by duet removes it, so an operator's `stop-instance` or `down` is respected), and it
 * crashed when that pidfile's process is gone.
 */
export class ColorWatch {
  readonly state: ColorSupervision;
  /** The process last seen running this color. */
  private instance: InstanceRecord | undefined;
  /** The pidfile record the instance belongs to: another one means duet started it anew. */
  private recordKey: string | undefined;
  private readonly streak: FailureStreak;
  private startingSince: number | undefined;
  private healthySince: number | undefined;
  /** Whether the process it runs answered its health check since it started. */
  private servedSinceStart = false;
  /** When its processes exited: a crash loop shows here. */
  private exits: number[] = [];
  /** The failures in a row of one cause, which set the backoff. */
  private failures: { cause: FailureCause; count: number; lastAt: number } | undefined;
  private nextRestartAt = 0;
  /** A verdict waiting for a restart (or a failover): the color will not recover by itself. */
  private needsRestart = false;
  /** The process it runs exited since it was adopted: the next one is a restart (systemd's). */
  private exitedSinceAdopt = false;

  constructor(
    private readonly app: AppConfig,
    readonly color: Color,
    persisted?: ColorSupervision,
  ) {
    // A time without an answer is a verdict only as far as this process saw it: while duet serve
    // was away (a restart of duet.service, a slow machine) nobody watched, and a color down at the
    // last look before may have served since. The clock starts again at this process's first look.
    this.state = { ...emptyColorSupervision(), ...persisted, downSince: null };
    this.streak = new FailureStreak(app.health.path);
  }

  get health(): ColorHealth {
    return this.state.health;
  }

  exitsWithin(ms: number, now: number): number {
    return this.exits.filter((at) => now - at < ms).length;
  }

  /** The process it watches now. */
  get pid(): number | undefined {
    return this.instance?.pid;
  }

  downForMs(now: number): number {
    return this.state.downSince ? now - Date.parse(this.state.downSince) : 0;
  }

  /** It needs a restart: it crashed (runner: process) or was judged unhealthy. */
  get needsRestartNow(): boolean {
    return this.needsRestart || (this.state.health === 'down' && !runnerOf(this.app).restartsCrashed);
  }

  /**
   * Whether the owner should restart it now: it needs one and its backoff has passed, or
   * `maxDelayMs` has since its last failure (the owner shortens the wait while nothing serves).
   */
  restartDue(now: number, maxDelayMs = Number.POSITIVE_INFINITY): boolean {
    if (!this.needsRestartNow) return false;
    return now >= Math.min(this.nextRestartAt, (this.failures?.lastAt ?? 0) + maxDelayMs);
  }

  /** A restart that failed (the port taken, the checkout moved on): tried again after the backoff. */
  restartFailed(detail: string, now: number): void {
    this.failed('start', now, { minDelayMs: 1000 });
    this.problem(detail, now);
  }

  /** The owner restarted the color: this record is ours, and it is starting. */
  restarted(record: InstanceRecord, now: number): void {
    this.recordKey = keyOf(record);
    this.adopt(record, now);
    this.state.restarts += 1;
    this.needsRestart = false;
  }

  /** One look: the pidfile, the process, then the health path. */
  async look(now: number): Promise<Finding[]> {
    const record = await readPidfile(this.app.paths.pidfile[this.color]);
    if (!record) {
      // Stopped by duet on purpose (deploy, stop-instance, down), or never started.
      this.forget();
      this.setHealth('stopped', now);
      return [];
    }
    const findings: Finding[] = [];
    if (keyOf(record) !== this.recordKey) {
      // Started anew by duet (a deploy, bootup, start-instance): a fresh start, not a crash.
      this.exits = [];
      this.failures = undefined;
      this.needsRestart = false;
      this.nextRestartAt = 0;
      this.recordKey = keyOf(record);
      this.instance = undefined;
      const current = await runnerOf(this.app).running(this.color);
      if (current) {
        // A process that already went live was healthy once: no start-up grace, a hang is judged
        // at once by the failed probes in a row. Else its start is the one in the record.
        this.adopt(current, now, record.liveSince ? Number.NEGATIVE_INFINITY : Date.parse(record.startedAt));
        findings.push({ kind: 'appeared' });
      }
    } else if (!this.instance || !(await isSameProcessAlive(this.instance))) {
      const previous = this.instance;
      const current = await runnerOf(this.app).running(this.color);
      if (previous && current?.pid !== previous.pid) {
        const detail = describeExit(await runnerOf(this.app).exitStatus(previous));
        this.exits = [...this.exits.filter((at) => now - at < STABLE_MS), now];
        this.failed(this.servedSinceStart ? 'crash' : 'start', now);
        this.exitedSinceAdopt = true;
        this.problem(detail, now);
        // Down from the exit on, even when systemd's next process is up by this look: it is only
        // starting, and a version that cannot start must not look like one that starts forever.
        this.setHealth('down', now);
        findings.push({ kind: 'exited', detail });
      }
      this.instance = undefined;
      if (current && current.pid !== previous?.pid) {
        // systemd restarted it (runner: systemd): counted, and starting again.
        if (this.exitedSinceAdopt) this.state.restarts += 1;
        this.adopt(current, now);
      }
    }
    if (!this.instance) {
      if (this.state.health !== 'down') this.problem(this.state.lastProblem ?? 'not running', now, false);
      this.setHealth('down', now);
      return findings;
    }
    return [...findings, ...(await this.probe(now))];
  }

  private async probe(now: number): Promise<Finding[]> {
    const exited = this.instance && runnerOf(this.app).whenExited(this.instance.pid);
    const report = await checkHealthUntilExit(this.app, this.color, WATCH_PROBE_TIMEOUT_MS, exited);
    // It exited while probed (a socket duet holds would keep the probe waiting for the next
    // process): the next look, which the exit brings forward, sees the exit.
    if (report.state === 'exited') return [];
    return this.heard(report, now);
  }

  /** What a health check of the current process found: from a look, or one its owner made (HeldSockets.settle). */
  heard(report: HealthReport, now: number): Finding[] {
    const failure = this.streak.record(report);
    if (report.state === 'healthy') {
      const downMs = this.state.downSince ? this.downForMs(now) : undefined;
      const changed = this.state.health !== 'healthy';
      this.startingSince = undefined;
      this.servedSinceStart = true;
      this.healthySince ??= now;
      if (now - this.healthySince >= STABLE_MS) {
        this.exits = [];
        this.failures = undefined;
      }
      this.setHealth('healthy', now);
      return changed ? [{ kind: 'healthy', downMs }] : [];
    }
    this.healthySince = undefined;
    if (this.startingSince !== undefined) {
      // A start takes time: failed probes count only once health.timeout_s has passed.
      if (now - this.startingSince < this.app.health.timeout_s * 1000) {
        this.setHealth('starting', now);
        return [];
      }
      const detail = `did not become healthy within ${this.app.health.timeout_s} s of its start (GET ${this.app.health.path}: ${report.detail})`;
      this.startingSince = undefined;
      this.failed('start', now, { judged: true });
      this.judgeUnhealthy(detail, now);
      return [{ kind: 'unhealthy', detail }];
    }
    if (!failure) return [];
    const changed = this.state.health !== 'unhealthy';
    this.judgeUnhealthy(failure, now);
    // Slow is not dead: a color that runs but fails its checks is restarted only once that
    // has lasted health.failover_after_s (a busy database, a GC storm pass).
    if (!this.needsRestart && this.unhealthyForMs(now) >= this.app.health.failover_after_s * 1000) this.failed('unhealthy', now, { judged: true });
    return changed ? [{ kind: 'unhealthy', detail: failure }] : [];
  }

  /** For how long its health checks have been failing while it runs (0: they are not). */
  unhealthyForMs(now: number): number {
    return this.state.health === 'unhealthy' ? this.downForMs(now) : 0;
  }

  private judgeUnhealthy(detail: string, now: number): void {
    this.problem(detail, now);
    this.setHealth('unhealthy', now);
  }

  /**
   * One more failure of `cause`: the next restart waits the backoff of its failures in a row. A
   * verdict on a running process (`judged`) needs a restart; a process that is gone needs one
   * anyway (runner: process) or gets one from systemd.
   */
  private failed(cause: FailureCause, now: number, o: { judged?: boolean; minDelayMs?: number } = {}): void {
    const count = this.failures?.cause === cause ? this.failures.count + 1 : 1;
    this.failures = { cause, count, lastAt: now };
    if (o.judged) this.needsRestart = true;
    this.nextRestartAt = now + Math.max(o.minDelayMs ?? 0, restartDelayMs(count));
  }

  private adopt(instance: InstanceRecord, now: number, startedAt = now): void {
    this.instance = instance;
    this.exitedSinceAdopt = false;
    this.servedSinceStart = false;
    const since = Number.isNaN(startedAt) ? now : Math.min(startedAt, now);
    this.startingSince = now - since < this.app.health.timeout_s * 1000 ? since : undefined;
    this.healthySince = undefined;
    this.streak.reset();
  }

  private forget(): void {
    this.instance = undefined;
    this.recordKey = undefined;
    this.exits = [];
    this.failures = undefined;
    this.needsRestart = false;
    this.startingSince = undefined;
  }

  private problem(detail: string, now: number, replace = true): void {
    if (replace || !this.state.lastProblem) {
      this.state.lastProblem = detail;
      this.state.lastProblemAt = new Date(now).toISOString();
    }
  }

  private setHealth(health: ColorHealth, now: number): void {
    const down = health === 'down' || health === 'unhealthy' || (health === 'starting' && this.state.downSince !== null);
    this.state.downSince = down ? (this.state.downSince ?? new Date(now).toISOString()) : null;
    this.state.health = health;
  }
}

function keyOf(record: InstanceRecord): string {
  return `${record.pid}/${record.startTime}`;
}
