import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { checkHealth, type HealthReport } from './health.js';
import { isSameProcessAlive } from './process-identity.js';
import { describeExit, runnerOf, type InstanceRecord } from './runner.js';

/**
 * Watching a color that serves traffic: its process and its health path, a few times a second.
 * One failed probe is no verdict (a slow answer under load, a GC pause): only FAILURES_IN_A_ROW
 * of them are. An exit is a verdict at once.
 */
const WATCH_INTERVAL_MS = 200;
const FAILURES_IN_A_ROW = 3;
/** A probe that gets no answer in this long counts as one failure: a hung app fails three. */
export const WATCH_PROBE_TIMEOUT_MS = 2_000;

type WatchVerdict = { state: 'healthy'; probes: number; slowestMs: number } | { state: 'exited' | 'unhealthy'; afterMs: number; detail: string };

/**
 * Counts failed probes in a row; the owner feeds it each report and acts on the verdict. Shared
 * by the watch after a switch and by duet serve's supervision.
 */
export class FailureStreak {
  private count = 0;
  private last: HealthReport | undefined;

  constructor(
    private readonly path: string,
    readonly threshold = FAILURES_IN_A_ROW,
  ) {}

  /** The failure text once the threshold is reached, else undefined. A healthy probe resets it. */
  record(report: HealthReport): string | undefined {
    if (report.state === 'healthy') {
      this.count = 0;
      return undefined;
    }
    this.count += 1;
    this.last = report;
    return this.count >= this.threshold ? this.describe() : undefined;
  }

  reset(): void {
    this.count = 0;
  }

  private describe(): string {
    const what = this.last?.state === 'unhealthy' ? `answered ${this.last.detail}` : `got no answer (${this.last?.detail ?? 'unknown'})`;
    return `GET ${this.path} ${what} ${this.count} times in a row`;
  }
}

/**
 * Watch `instance` (the color `color` runs) for `durationMs`, from `since` (when it went live).
 * Resolves with the first verdict: exited, unhealthy, or healthy once the time is up.
 */
export async function watchInstance(app: AppConfig, color: Color, instance: InstanceRecord, durationMs: number, since = Date.now()): Promise<WatchVerdict> {
  const streak = new FailureStreak(app.health.path);
  // A process this duet started tells its exit the moment it happens; any other is looked at.
  const exited = runnerOf(app).whenExited(instance.pid);
  let probes = 0;
  let slowestMs = 0;
  const gone = async (): Promise<WatchVerdict> => ({
    state: 'exited',
    afterMs: Date.now() - since,
    detail: `${describeExit(await runnerOf(app).exitStatus(instance))} ${seconds(Date.now() - since)} after going live`,
  });
  for (;;) {
    if (!(await isSameProcessAlive(instance))) return gone();
    const started = Date.now();
    const report = await checkHealth(app, color, WATCH_PROBE_TIMEOUT_MS);
    probes += 1;
    slowestMs = Math.max(slowestMs, Date.now() - started);
    const failure = streak.record(report);
    if (failure) {
      // Refused because it is exiting: that is the better story.
      if (!(await isSameProcessAlive(instance))) return gone();
      return { state: 'unhealthy', afterMs: Date.now() - since, detail: `${failure}, ${seconds(Date.now() - since)} after going live` };
    }
    const left = since + durationMs - Date.now();
    if (left <= 0) return { state: 'healthy', probes, slowestMs };
    await Promise.race([sleep(Math.min(WATCH_INTERVAL_MS, left)), ...(exited ? [exited] : [])]);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
