import type { AppConfig, Config } from '../config/load.js';
import { colors, otherColor, type Color } from '../config/schema.js';
import { checkedOutRevision } from '../instance/checkout.js';
import { checkHealth } from '../instance/health.js';
import { readPidfile } from '../instance/pidfile.js';
import { identify, type ProcessIdentity } from '../instance/process-identity.js';
import { runnerOf } from '../instance/runner.js';
import type { SocketOpener } from '../switch/socket-opener.js';
import { switchOf } from '../switch/switch.js';
import { ColorWatch, type Finding } from './color-watch.js';
import { failover, type FailoverResult } from './failover.js';
import { HeldSockets } from './held-sockets.js';
import { acquireLock, lockHolder } from './lock.js';
import { silentObserver } from './observer.js';
import { Wakeup } from '../util/wakeup.js';
import { readSupervision, writeSupervision, type BothCrashedRecord, type FailoverRecord, type SupervisionRecord } from './supervision-record.js';

/** How often duet serve looks at each color: its pidfile, its process, its health path. */
export const SUPERVISE_INTERVAL_MS = 500;
/** A live color that has not answered for this long (crashed and not back yet) is failed over. */
const FAILOVER_AFTER_DOWN_MS = 10_000;
/** A live color that exited this often within CRASH_LOOP_MS is failed over without waiting. */
const CRASH_LOOP_EXITS = 3;
const CRASH_LOOP_MS = 60_000;
/**
 * While nothing answers the public port, or both colors crash, no color waits longer than this
 * for its restart: the backoff spares the machine a storm, not at the price of the outage.
 */
const QUICK_RESTART_MS = 2_000;

type Role = 'live' | 'standby';

/** What supervision tells its owner (duet serve: the log, metrics, GitHub). */
export interface SupervisionObserver {
  colorDown(app: AppConfig, color: Color, role: Role, detail: string): void;
  colorRestarted(app: AppConfig, color: Color, role: Role, pid: number, restarts: number): void;
  colorBack(app: AppConfig, color: Color, role: Role, downMs: number): void;
  failedOver(app: AppConfig, result: FailoverResult, reason: string): void;
  /** Both colors exited within CRASH_LOOP_MS: a request or the machine, not the version; no failover. */
  bothCrashed(app: AppConfig, detail: string): void;
  /** Something supervision could not do: say it loudly, once per cause. */
  problem(app: AppConfig, message: string): void;
}

/** Why the live color should be failed over; `dead`: it is not running (or keeps exiting), not merely slow. */
interface Verdict {
  reason: string;
  dead: boolean;
}

/**
 * duet serve's supervision of one app. Every SUPERVISE_INTERVAL_MS it looks at both colors and
 * acts: a color that crashed is restarted (runner: process; systemd restarts its own), with
 * backoff; a live color that is dead (down for FAILOVER_AFTER_DOWN_MS, or a crash loop of its own)
 * or stays unhealthy for health.failover_after_s is failed over to a healthy standby. Crashes of
 * both colors close together are no verdict on the version: both are restarted quickly and it is
 * said loudly. Traffic that came to a color by a failover is never moved back while both run
 * (no flapping), only when that color is dead. While a deploy, rollback or any act holds the
 * app's lock, the colors are that operation's, and supervision only waits.
 */
export class AppSupervisor {
  private readonly watches: Record<Color, ColorWatch>;
  private lastFailover: FailoverRecord | null;
  private bothCrashed: BothCrashedRecord | null;
  private readonly told = new Set<string>();
  /** Inside an episode of both colors crashing (reported once). */
  private episode = false;
  private readonly opener: SocketOpener | undefined;
  private readonly held: HeldSockets | undefined;
  /** Rung by an exit: the loop looks again at once instead of at its next interval. */
  readonly wakeup = new Wakeup();

  constructor(
    private readonly config: Config,
    readonly app: AppConfig,
    private readonly observer: SupervisionObserver,
    private readonly me: ProcessIdentity,
    persisted?: SupervisionRecord,
  ) {
    this.watches = { blue: new ColorWatch(app, 'blue', persisted?.colors.blue), green: new ColorWatch(app, 'green', persisted?.colors.green) };
    this.lastFailover = persisted?.lastFailover ?? null;
    this.bothCrashed = persisted?.bothCrashed ?? null;
    this.opener = switchOf(app).socketOpener((socket, error) => this.tellOnce(`socket ${socket}`, `cannot open ${socket} to nginx: ${error.message}`));
    if (app.socket_activation) this.held = new HeldSockets(app, () => this.wakeup.wake());
  }

  static async open(config: Config, app: AppConfig, observer: SupervisionObserver): Promise<AppSupervisor> {
    const me = await identify(process.pid);
    if (!me) throw new Error('cannot read this process in /proc');
    return new AppSupervisor(config, app, observer, me, await readSupervision(app));
  }

  async tick(now = Date.now()): Promise<void> {
    this.opener?.start();
    if (await lockHolder(this.app)) return;
    const live = await switchOf(this.app).configuredColor(this.config);
    if (!live) return;
    const before = this.snapshot();
    for (const color of colors) {
      for (const finding of await this.watches[color].look(now)) this.tell(color, color === live ? 'live' : 'standby', finding);
    }
    this.held?.track(this.watches, now);
    this.noticeBothCrashing(now);
    await this.act(live, now);
    if (this.snapshot() !== before) await writeSupervision(this.app, this.record());
  }

  close(): void {
    this.opener?.close();
  }

  /** What the record says, without its time stamp: written only when this changes. */
  private snapshot(): string {
    return JSON.stringify([this.watches.blue.state, this.watches.green.state, this.lastFailover, this.bothCrashed]);
  }

  record(): SupervisionRecord {
    return {
      ...this.me,
      updatedAt: new Date().toISOString(),
      colors: { blue: this.watches.blue.state, green: this.watches.green.state },
      lastFailover: this.lastFailover,
      bothCrashed: this.bothCrashed,
    };
  }

  /** Both colors exited within CRASH_LOOP_MS of now: a request that kills any color, or the machine. */
  private bothCrashing(now: number): boolean {
    return colors.every((color) => this.watches[color].exitsWithin(CRASH_LOOP_MS, now) > 0);
  }

  /** Said once per episode: an episode ends when a minute passes without both colors exiting. */
  private noticeBothCrashing(now: number): void {
    const was = this.episode;
    this.episode = this.bothCrashing(now);
    if (!this.episode || was) return;
    const detail = colors.map((color) => `${color}: ${this.watches[color].state.lastProblem ?? 'exited'}`).join('; ');
    this.bothCrashed = { at: new Date(now).toISOString(), detail };
    this.observer.bothCrashed(this.app, detail);
  }

  private async act(live: Color, now: number): Promise<void> {
    const standby = otherColor(live);
    const verdict = this.app.failover ? this.verdict(live, now) : undefined;
    if (verdict) {
      const refusal = await this.cannotFailOver(live, standby, verdict);
      if (!refusal) {
        await this.failOver(live, verdict.reason, verdict.dead);
        return;
      }
      this.tellOnce(`no-failover ${live} ${refusal}`, `${live} (live) ${verdict.reason}, and there is no failover: ${refusal}`);
    }
    // Each color's own backoff would leave the port dark while neither answers; the standby's
    // restart never waits for the live color's, so whichever comes back first serves.
    const nothingServes = colors.every((color) => this.watches[color].health !== 'healthy');
    const quick = nothingServes || this.bothCrashing(now) ? QUICK_RESTART_MS : Number.POSITIVE_INFINITY;
    for (const color of [live, standby]) {
      const maxDelayMs = Math.min(quick, this.held?.maxRestartDelayMs(color, color === live) ?? quick);
      if (this.watches[color].restartDue(now, maxDelayMs)) await this.restart(color, color === live ? 'live' : 'standby', now);
    }
  }

  /** Why the live color should be failed over now, or undefined while it may still come back. */
  private verdict(live: Color, now: number): Verdict | undefined {
    // A request that kills any color, or the machine, is no verdict on the version: moving
    // traffic to the other version would leave it there once the cause is gone. The fallback
    // serves whichever color is up meanwhile.
    if (this.bothCrashing(now)) return undefined;
    const watch = this.watches[live];
    const last = watch.state.lastProblem ?? 'unknown';
    const downMs = watch.downForMs(now);
    if ((watch.health === 'down' || watch.health === 'starting') && downMs >= FAILOVER_AFTER_DOWN_MS) {
      return { dead: true, reason: `has not answered for ${(downMs / 1000).toFixed(0)} s (last: ${last})` };
    }
    // With the socket held, exits are no verdict (held-sockets.ts): the time without an answer is.
    const exits = watch.exitsWithin(CRASH_LOOP_MS, now);
    if (!this.held && exits >= CRASH_LOOP_EXITS) {
      return { dead: true, reason: `exited ${exits} times within ${CRASH_LOOP_MS / 1000} s (last: ${last})` };
    }
    const unhealthyMs = watch.unhealthyForMs(now);
    if (unhealthyMs >= this.app.health.failover_after_s * 1000) {
      return { dead: false, reason: `has failed its health checks for ${(unhealthyMs / 1000).toFixed(0)} s (last: ${last})` };
    }
    return undefined;
  }

  private async cannotFailOver(live: Color, standby: Color, verdict: Verdict): Promise<string | undefined> {
    const last = this.lastFailover;
    if (!verdict.dead && last && last.from === standby && last.to === live) {
      return `traffic came to ${live} by a failover from ${standby} at ${last.at}, and duet does not move it back while ${live} runs`;
    }
    if (this.watches[standby].health !== 'healthy') return `${standby} (standby) is ${this.watches[standby].health}`;
    // Its last look may be half a second old: ask once more, right before moving traffic.
    const report = await checkHealth(this.app, standby, 2000);
    return report.state === 'healthy' ? undefined : `${standby} (standby) answers ${report.detail}`;
  }

  private async failOver(from: Color, reason: string, dead: boolean): Promise<void> {
    try {
      const result = await failover(this.config, this.app, { from, reason: `${from} ${reason}`, observer: silentObserver });
      if (dead)
        await this.held
          ?.failedOver(from)
          .catch((error: Error) => this.tellOnce(`stop ${from}`, `stopping ${from} after the failover failed: ${error.message}`));
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
      await runnerOf(this.app).stop(color, { restarting: true });
      const started = await runnerOf(this.app).start(color, { sha: record.sha, ref: record.ref });
      watch.restarted(started, now);
      this.observer.colorRestarted(this.app, color, role, started.pid, watch.state.restarts);
      if (this.held) {
        this.held.track(this.watches, Date.now());
        const answer = await this.held.settle(color, started);
        const findings = answer ? watch.heard(answer, Date.now()) : [];
        for (const finding of [...findings, ...(await watch.look(Date.now()))]) this.tell(color, role, finding);
      }
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
      this.openSocket(color);
      if (finding.downMs !== undefined) this.observer.colorBack(this.app, color, role, finding.downMs);
      this.told.clear();
    }
  }

  private openSocket(color: Color): void {
    try {
      switchOf(this.app).openToNginx(color);
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
