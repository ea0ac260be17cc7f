import type { Config } from '../config/load.js';
import { AppSupervisor, SUPERVISE_INTERVAL_MS, type SupervisionObserver } from './supervisor.js';

/** The loops of one set of apps, stopped together. */
interface Round {
  abort: AbortController;
  apps: AppSupervisor[];
  loops: Array<Promise<void>>;
}

/** Supervision of every app, each in a loop of its own, for as long as duet serve runs. */
export class Supervisor {
  private round: Round | undefined;
  private stopped = false;

  private constructor(private readonly observer: SupervisionObserver) {}

  static async start(config: Config, observer: SupervisionObserver): Promise<Supervisor> {
    const supervisor = new Supervisor(observer);
    await supervisor.watch(config);
    return supervisor;
  }

  /**
   * Supervise the apps `config` has now (a reloaded duet.yml). Each app's supervision is made
   * anew from its record on disk, so what it counts (restarts, the last failover) carries over.
   */
  async reconfigure(config: Config): Promise<void> {
    if (this.stopped) return;
    await this.endRound();
    await this.watch(config);
  }

  /** Stops looking; an action under way (a restart, a failover) finishes first. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.endRound();
  }

  private async endRound(): Promise<void> {
    const round = this.round;
    this.round = undefined;
    if (!round) return;
    round.abort.abort();
    await Promise.all(round.loops);
    for (const app of round.apps) app.close();
  }

  private async watch(config: Config): Promise<void> {
    const apps = await Promise.all([...config.apps.values()].map((app) => AppSupervisor.open(config, app, this.observer)));
    if (this.stopped) {
      for (const app of apps) app.close();
      return;
    }
    const abort = new AbortController();
    this.round = { abort, apps, loops: apps.map((app) => this.loop(app, abort.signal)) };
  }

  private async loop(app: AppSupervisor, signal: AbortSignal): Promise<void> {
    let lastError: string | undefined;
    while (!signal.aborted) {
      try {
        await app.tick();
        lastError = undefined;
      } catch (error) {
        // Supervision must outlive whatever one look runs into (a config edited by hand, a full
        // disk), and say so once, not twice a second.
        const message = `supervision: ${(error as Error).message}`;
        if (message !== lastError) this.observer.problem(app.app, message);
        lastError = message;
      }
      await app.wakeup.next(SUPERVISE_INTERVAL_MS, signal);
    }
  }
}
