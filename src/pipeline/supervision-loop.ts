import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/load.js';
import { AppSupervisor, SUPERVISE_INTERVAL_MS, type SupervisionObserver } from './supervisor.js';

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
      await Promise.race([sleep(intervalMs, undefined, { signal: this.abort.signal }).catch(() => {}), app.wakeup.next()]);
    }
  }
}
