import type { AppConfig } from '../config/load.js';
import { colors, type Color } from '../config/schema.js';
import { checkHealthUntilExit, type HealthReport } from '../instance/health.js';
import { heldListener, releaseListener } from '../instance/listener-hold.js';
import { runnerOf, type InstanceRecord } from '../instance/runner.js';
import { pollUntil } from '../util/poll.js';
import type { ColorWatch } from './color-watch.js';
import { acquireLock } from './lock.js';

/** How long a restarted color is probed closely for its first answer before the looks take over. */
const SETTLE_MS = 3_000;
/**
 * A color without a process whose last processes failed to start (exited without taking a
 * connection from the socket), and that has not answered for this long, lets its socket go.
 * Requests wait in a held socket for the next process; once its starts keep failing they would
 * wait for nothing, and nginx's fallback (the standby) answers a refused connection at once.
 */
const HOLD_WITHOUT_ANSWER_MS = 2_000;
const HOLD_UNANSWERED_EXITS = 3;

/**
 * duet serve's side of `socket_activation` for one app: the socket of each color stays bound
 * while its process restarts (instance/listener-hold.ts), so a crash of the live color makes
 * requests wait for the next process rather than fail or reach the standby. That is worth it
 * only while the next process comes at once and can serve:
 * - a process exit wakes supervision at once (no half-second look to wait for), and the live
 *   color restarts without backoff while its socket is held: requests are waiting;
 * - a restarted process is probed closely until it first answers;
 * - a color whose processes fail to start lets the socket go, so nginx refuses, and its
 *   fallback answers from the standby while the backoff runs.
 * An answer cannot tell a failed start from a request of death: on a busy machine the death that
 * queued during a restart comes before the probe, and the process dies before it answers. Whether
 * the process took the probe from the queue (the exit cut it off) or left it waiting can. A
 * version that dies just after it listens holds requests until the verdict on the version, the
 * time without an answer (FAILOVER_AFTER_DOWN_MS).
 */
export class HeldSockets {
  private readonly subscribed = new Set<number>();
  /** When a process of each color last answered its health check, and how many failed to start since. */
  private readonly answeredAt: Record<Color, number>;
  private readonly unanswered: Record<Color, number> = { blue: 0, green: 0 };

  constructor(
    private readonly app: AppConfig,
    private readonly wake: () => void,
    now = Date.now(),
  ) {
    this.answeredAt = { blue: now, green: now };
  }

  /** After each look: let go what no process will take soon, and listen for exits. */
  track(watches: Record<Color, ColorWatch>, now: number): void {
    for (const color of colors) {
      const watch = watches[color];
      const path = this.app.paths.socket[color];
      if (watch.health === 'healthy') this.answered(color, now);
      // Stopped on purpose (by anyone), or its processes do not come to answer: let the fallback answer.
      const failing = watch.pid === undefined && this.unanswered[color] >= HOLD_UNANSWERED_EXITS && now - this.answeredAt[color] >= HOLD_WITHOUT_ANSWER_MS;
      if (watch.health === 'stopped' || failing) releaseListener(path);
      else heldListener(path); // drops a hold whose path another duet bound anew
      const pid = watch.pid;
      const exited = pid === undefined || this.subscribed.has(pid) ? undefined : runnerOf(this.app).whenExited(pid);
      if (pid === undefined || !exited) continue;
      this.subscribed.add(pid);
      void exited.then(() => {
        this.subscribed.delete(pid);
        this.wake();
      });
    }
  }

  /** The most the live color waits for its restart: none while its socket holds requests for it. */
  maxRestartDelayMs(color: Color, live: boolean): number | undefined {
    return live && heldListener(this.app.paths.socket[color]) !== undefined ? 0 : undefined;
  }

  /**
   * Probe the restarted process closely until it answers, exits, or SETTLE_MS pass. Its answer
   * goes to the color's owner (the watch), whose looks may all fall on the process's restarts
   * while requests of death arrive as fast as it starts.
   */
  async settle(color: Color, started: InstanceRecord): Promise<HealthReport | undefined> {
    const exited = runnerOf(this.app).whenExited(started.pid);
    let answer: HealthReport | undefined;
    await pollUntil(
      async () => {
        // One probe waits its turn in the queue (a short timeout would give up on a slow start and
        // queue the next one behind later requests); the process's exit ends the wait.
        const report = await checkHealthUntilExit(this.app, color, SETTLE_MS, exited);
        if (report.state === 'healthy') {
          this.answered(color, Date.now());
          answer = report;
        }
        if (report.state === 'exited') this.unanswered[color] = report.tookProbe ? 0 : this.unanswered[color] + 1;
        return report.state === 'exited' || report.state === 'healthy' ? true : undefined;
      },
      { timeoutMs: SETTLE_MS, initialIntervalMs: 5, maxIntervalMs: 20 },
    );
    return answer;
  }

  private answered(color: Color, now: number): void {
    this.answeredAt[color] = now;
    this.unanswered[color] = 0;
  }

  /**
   * A dead color traffic left by a failover: what waits in its socket will not be served soon.
   * Under runner: systemd its service has no start limit (setup/units.ts), so it would restart
   * every 100 ms for good: the runner ends that, the record stays (status shows it down, as a
   * color systemd gave up on), and a deploy or start-instance brings it back.
   */
  async failedOver(from: Color): Promise<void> {
    releaseListener(this.app.paths.socket[from]);
    const runner = runnerOf(this.app);
    if (!runner.endRestarts) return;
    const lock = await acquireLock(this.app, { command: `stop ${from} after a failover`, wait: false }).catch(() => undefined);
    if (!lock) return; // an operation took the lock since: the colors are its own
    try {
      await runner.endRestarts(from);
    } finally {
      await lock.release();
    }
  }
}
