import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { checkHealth } from '../instance/health.js';
import { readPidfile } from '../instance/pidfile.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { describeExit, exitStatus, runningInstance, type InstanceRecord } from '../instance/runner.js';
import { FailureStreak, WATCH_PROBE_TIMEOUT_MS } from '../instance/watch.js';
import { emptyColorSupervision, type ColorHealth, type ColorSupervision } from './supervision-record.js';

/**
 * Restarts back off: the first comes at once, each further one within RECENT_MS waits twice as
 * long as the one before (1 s, 2 s, 4 s ... up to MAX_RESTART_DELAY_MS), so a version that
 * crashes on every start costs a few processes a minute, not a storm. A color healthy for
 * STABLE_MS has its count of recent exits forgotten.
 */
export const RECENT_MS = 10 * 60_000;
export const STABLE_MS = 60_000;
export const MAX_RESTART_DELAY_MS = 60_000;

export function restartDelayMs(recentExits: number): number {
  return recentExits <= 1 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (recentExits - 2));
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
  private exits: number[] = [];
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
    this.state = { ...emptyColorSupervision(), ...persisted };
    this.streak = new FailureStreak(app.health.path);
  }

  get health(): ColorHealth {
    return this.state.health;
  }

  /** Exits within RECENT_MS: a crash loop shows here. */
  recentExits(now: number): number {
    this.exits = this.exits.filter((at) => now - at < RECENT_MS);
    return this.exits.length;
  }

  exitsWithin(ms: number, now: number): number {
    return this.exits.filter((at) => now - at < ms).length;
  }

  downForMs(now: number): number {
    return this.state.downSince ? now - Date.parse(this.state.downSince) : 0;
  }

  /** Whether the owner should restart it now: it crashed (runner: process) or was judged unhealthy, and its backoff has passed. */
  restartDue(now: number): boolean {
    if (now < this.nextRestartAt) return false;
    if (this.needsRestart) return true;
    return this.state.health === 'down' && this.app.runner === 'process';
  }

  /** A restart that failed (the port taken, the checkout moved on): tried again after the backoff. */
  restartFailed(detail: string, now: number): void {
    this.exits.push(now);
    this.nextRestartAt = now + Math.max(1000, restartDelayMs(this.recentExits(now)));
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
      this.needsRestart = false;
      this.nextRestartAt = 0;
      this.recordKey = keyOf(record);
      this.instance = undefined;
      const current = await runningInstance(this.app, this.color);
      if (current) {
        // A process that already went live was healthy once: no start-up grace, a hang is judged
        // at once by the failed probes in a row. Else its start is the one in the record.
        this.adopt(current, now, record.liveSince ? Number.NEGATIVE_INFINITY : Date.parse(record.startedAt));
        findings.push({ kind: 'appeared' });
      }
    } else if (!this.instance || !(await isSameProcessAlive(this.instance))) {
      const previous = this.instance;
      const current = await runningInstance(this.app, this.color);
      if (previous && current?.pid !== previous.pid) {
        const detail = describeExit(await exitStatus(this.app, previous));
        this.exits.push(now);
        this.nextRestartAt = now + restartDelayMs(this.recentExits(now));
        this.exitedSinceAdopt = true;
        this.problem(detail, now);
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
    const report = await checkHealth(this.app, this.color, WATCH_PROBE_TIMEOUT_MS);
    const failure = this.streak.record(report);
    if (report.state === 'healthy') {
      const downMs = this.state.downSince ? this.downForMs(now) : undefined;
      const changed = this.state.health !== 'healthy';
      this.startingSince = undefined;
      this.healthySince ??= now;
      if (now - this.healthySince >= STABLE_MS) this.exits = [];
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
      return [
        this.judgeUnhealthy(`did not become healthy within ${this.app.health.timeout_s} s of its start (GET ${this.app.health.path}: ${report.detail})`, now),
      ];
    }
    if (!failure) return [];
    return [this.judgeUnhealthy(failure, now)];
  }

  private judgeUnhealthy(detail: string, now: number): Finding {
    this.startingSince = undefined;
    if (!this.needsRestart) {
      this.needsRestart = true;
      this.exits.push(now);
      this.nextRestartAt = now + restartDelayMs(this.recentExits(now));
    }
    this.problem(detail, now);
    this.setHealth('unhealthy', now);
    return { kind: 'unhealthy', detail };
  }

  private adopt(instance: InstanceRecord, now: number, startedAt = now): void {
    this.instance = instance;
    this.exitedSinceAdopt = false;
    const since = Number.isNaN(startedAt) ? now : Math.min(startedAt, now);
    this.startingSince = now - since < this.app.health.timeout_s * 1000 ? since : undefined;
    this.healthySince = undefined;
    this.streak.reset();
  }

  private forget(): void {
    this.instance = undefined;
    this.recordKey = undefined;
    this.exits = [];
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
