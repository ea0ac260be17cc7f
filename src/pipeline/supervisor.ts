import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig, Config } from '../config/load.js';
import { colors, otherColor, type Color } from '../config/schema.js';
import { checkedOutRevision } from '../instance/checkout.js';
import { checkHealth } from '../instance/health.js';
import { readPidfile } from '../instance/pidfile.js';
import { identify, type ProcessIdentity } from '../instance/process-identity.js';
import { startInstance, stopInstance } from '../instance/runner.js';
import { configuredColor } from '../switch/proxy.js';
import { SocketOpener } from '../switch/socket-opener.js';
import { makeSocketReachable } from '../switch/socket-permissions.js';
import { ColorWatch, type Finding } from './color-watch.js';
import { failover, type FailoverResult } from './failover.js';
import { acquireLock, lockHolder } from './lock.js';
import { silentObserver } from './observer.js';
import { readSupervision, writeSupervision, type FailoverRecord, type SupervisionRecord } from './supervision-record.js';

/** How often duet serve looks at each color: its pidfile, its process, its health path. */
export const SUPERVISE_INTERVAL_MS = 500;
/** A live color that has not answered for this long (crashed and not back yet) is failed over. */
export const FAILOVER_AFTER_DOWN_MS = 10_000;
/** A live color that exited this often within CRASH_LOOP_MS is failed over without waiting. */
export const CRASH_LOOP_EXITS = 3;
export const CRASH_LOOP_MS = 60_000;

export type Role = 'live' | 'standby';

/** What supervision tells its owner (duet serve: the log, metrics, GitHub). */
export interface SupervisionObserver {
  colorDown(app: AppConfig, color: Color, role: Role, detail: string): void;
  colorRestarted(app: AppConfig, color: Color, role: Role, pid: number, restarts: number): void;
  colorBack(app: AppConfig, color: Color, role: Role, downMs: number): void;
  failedOver(app: AppConfig, result: FailoverResult, reason: string): void;
  /** Something supervision could not do: say it loudly, once per cause. */
  problem(app: AppConfig, message: string): void;
}

/**
 * duet serve's supervision of one app. Every SUPERVISE_INTERVAL_MS it looks at both colors and
 * acts: a color that crashed is restarted (runner: process; systemd restarts its own), with
 * backoff; a live color that does not come back (a crash loop, down for FAILOVER_AFTER_DOWN_MS,
 * or alive but failing its health check) is failed over to a healthy standby, once: duet never
 * fails back over on its own. While a deploy, rollback or any act holds the app's lock, the
 * colors are that operation's, and supervision only waits.
 */
export class AppSupervisor {
  private readonly watches: Record<Color, ColorWatch>;
  private lastFailover: FailoverRecord | null;
  private readonly told = new Set<string>();
  private readonly opener: SocketOpener | undefined;

  constructor(
    private readonly config: Config,
    readonly app: AppConfig,
    private readonly observer: SupervisionObserver,
    private readonly me: ProcessIdentity,
    persisted?: SupervisionRecord,
  ) {
    this.watches = { blue: new ColorWatch(app, 'blue', persisted?.colors.blue), green: new ColorWatch(app, 'green', persisted?.colors.green) };
    this.lastFailover = persisted?.lastFailover ?? null;
    if (app.switch === 'socket') {
      this.opener = new SocketOpener(app, (socket, error) => this.tellOnce(`socket ${socket}`, `cannot open ${socket} to nginx: ${error.message}`));
    }
  }

  static async open(config: Config, app: AppConfig, observer: SupervisionObserver): Promise<AppSupervisor> {
    const me = await identify(process.pid);
    if (!me) throw new Error('cannot read this process in /proc');
    return new AppSupervisor(config, app, observer, me, await readSupervision(app));
  }

  async tick(now = Date.now()): Promise<void> {
    this.opener?.start();
    if (await lockHolder(this.app)) return;
    const live = await configuredColor(this.app, this.config);
    if (!live) return;
    const before = this.snapshot();
    for (const color of colors) {
      for (const finding of await this.watches[color].look(now)) this.tell(color, color === live ? 'live' : 'standby', finding);
    }
    await this.act(live, now);
    if (this.snapshot() !== before) await writeSupervision(this.app, this.record());
  }

  close(): void {
    this.opener?.close();
  }

  /** What the record says, without its time stamp: written only when this changes. */
  private snapshot(): string {
    return JSON.stringify([this.watches.blue.state, this.watches.green.state, this.lastFailover]);
  }

  record(): SupervisionRecord {
    return {
      ...this.me,
      updatedAt: new Date().toISOString(),
      colors: { blue: this.watches.blue.state, green: this.watches.green.state },
      lastFailover: this.lastFailover,
    };
  }

  private async act(live: Color, now: number): Promise<void> {
    const standby = otherColor(live);
    const reason = this.failoverReason(live, now);
    if (reason) {
      const refusal = await this.cannotFailOver(live, standby);
      if (!refusal) {
        await this.failOver(live, reason);
        return;
      }
      this.tellOnce(`no-failover ${live} ${refusal}`, `${live} (live) ${reason}, and there is no failover: ${refusal}`);
    }
    for (const color of [live, standby]) {
      if (this.watches[color].restartDue(now)) await this.restart(color, color === live ? 'live' : 'standby', now);
    }
  }

  /** Why the live color should be failed over now, or undefined while it may still come back. */
  private failoverReason(live: Color, now: number): string | undefined {
    const watch = this.watches[live];
    const last = watch.state.lastProblem ?? 'unknown';
    if (watch.health === 'unhealthy') return last;
    const exits = watch.exitsWithin(CRASH_LOOP_MS, now);
    if (exits >= CRASH_LOOP_EXITS) return `exited ${exits} times within ${CRASH_LOOP_MS / 1000} s (last: ${last})`;
    const downMs = watch.downForMs(now);
    if ((watch.health === 'down' || watch.health === 'starting') && downMs >= FAILOVER_AFTER_DOWN_MS) {
      return `has not answered for ${(downMs / 1000).toFixed(0)} s (last: ${last})`;
    }
    return undefined;
  }

  private async cannotFailOver(live: Color, standby: Color): Promise<string | undefined> {
    const last = this.lastFailover;
    if (last && last.from === standby && last.to === live) {
      return `traffic came to ${live} by a failover from ${standby} at ${last.at}, and duet never fails back on its own`;
    }
    if (this.watches[standby].health !== 'healthy') return `${standby} (standby) is ${this.watches[standby].health}`;
    // Its last look may be half a second old: ask once more, right before moving traffic.
    const report = await checkHealth(this.app, standby, 2000);
    return report.state === 'healthy' ? undefined : `${standby} (standby) answers ${report.detail}`;
  }

  private async failOver(from: Color, reason: string): Promise<void> {
    try {
      const result = await failover(this.config, this.app, { from, reason: `${from} ${reason}`, observer: silentObserver });
      this.lastFailover = { id: result.id, at: new Date().toISOString(), from, to: result.to, reason: `${from} ${reason}` };
      this.observer.failedOver(this.app, result, `${from} ${reason}`);
    } catch (error) {
      this.tellOnce(`failover-failed ${from}`, `failing over from ${from} failed: ${(error as Error).message}`);
    }
  }

  /** Start the color again at the revision its pidfile names; a hung instance is stopped first. */
  private async restart(color: Color, role: Role, now: number): Promise<void> {
    const watch = this.watches[color];
    let lock;
    try {
      lock = await acquireLock(this.app, { command: `restart ${color}`, wait: false });
    } catch {
      return; // an operation took the lock since this tick began: the colors are its own
    }
    try {
      const record = await readPidfile(this.app.paths.pidfile[color]);
      if (!record) return; // stopped on purpose meanwhile
      const checkedOut = await checkedOutRevision(this.app.paths.checkout[color]);
      if (checkedOut !== record.sha) {
        watch.restartFailed(`cannot restart: its checkout holds ${checkedOut?.slice(0, 7) ?? 'nothing'}, not ${record.sha.slice(0, 7)}`, now);
        this.tellOnce(
          `checkout ${color} ${checkedOut}`,
          `${color} (${role}) cannot be restarted: its checkout holds ${checkedOut ?? 'nothing'}, not ${record.sha}; deploy again`,
        );
        return;
      }
      await stopInstance(this.app, color);
      const started = await startInstance(this.app, color, { sha: record.sha, ref: record.ref });
      watch.restarted(started, now);
      this.observer.colorRestarted(this.app, color, role, started.pid, watch.state.restarts);
    } catch (error) {
      watch.restartFailed(`restart failed: ${(error as Error).message.split('\n')[0]}`, now);
      this.tellOnce(`restart-failed ${color}`, `restarting ${color} (${role}) failed: ${(error as Error).message}`);
    } finally {
      await lock.release();
    }
  }

  private tell(color: Color, role: Role, finding: Finding): void {
    if (finding.kind === 'exited' || finding.kind === 'unhealthy') {
      this.observer.colorDown(this.app, color, role, finding.detail);
    } else if (finding.kind === 'healthy') {
      // The SocketOpener opened it when it appeared; this covers a watch that could not start (no inotify).
      if (this.app.switch === 'socket') this.openSocket(color);
      if (finding.downMs !== undefined) this.observer.colorBack(this.app, color, role, finding.downMs);
      this.told.clear();
    }
  }

  private openSocket(color: Color): void {
    try {
      makeSocketReachable(this.app.paths.socket[color], this.app.paths.root);
    } catch (error) {
      this.tellOnce(`socket ${color}`, `cannot open ${this.app.paths.socket[color]} to nginx: ${(error as Error).message}`);
    }
  }

  private tellOnce(key: string, message: string): void {
    if (this.told.has(key)) return;
    this.told.add(key);
    this.observer.problem(this.app, message);
  }
}

/** Supervision of every app, each in a loop of its own, for as long as duet serve runs. */
export class Supervisor {
  private readonly abort = new AbortController();
  private loops: Array<Promise<void>> = [];
  private apps: AppSupervisor[] = [];

  static async start(config: Config, observer: SupervisionObserver, intervalMs = SUPERVISE_INTERVAL_MS): Promise<Supervisor> {
    const apps = await Promise.all([...config.apps.values()].map((app) => AppSupervisor.open(config, app, observer)));
    const supervisor = new Supervisor();
    supervisor.apps = apps;
    supervisor.loops = apps.map((app) => supervisor.loop(app, observer, intervalMs));
    return supervisor;
  }

  /** Stops looking; an action under way (a restart, a failover) finishes first. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
    for (const app of this.apps) app.close();
  }

  private async loop(app: AppSupervisor, observer: SupervisionObserver, intervalMs: number): Promise<void> {
    let lastError: string | undefined;
    while (!this.abort.signal.aborted) {
      try {
        await app.tick();
        lastError = undefined;
      } catch (error) {
        // Supervision must outlive whatever one look runs into (a config edited by hand, a full
        // disk), and say so once, not twice a second.
        const message = `supervision: ${(error as Error).message}`;
        if (message !== lastError) observer.problem(app.app, message);
        lastError = message;
      }
      await sleep(intervalMs, undefined, { signal: this.abort.signal }).catch(() => {});
    }
  }
}
