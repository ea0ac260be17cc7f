import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/load.js';
import { servedCertificate } from '../switch/tls.js';
import type { Deploy } from '../pipeline/deploy-state.js';
import type { TriggerObserver, TriggerQueue } from '../pipeline/trigger.js';

/**
 * Prometheus metrics of `duet serve`. Its own registry rather than prom-client's global one, so
 * that tests (and a second server in one process) each count from zero and nothing registered by
 * some library ends up on /metrics by accident.
 */
export class Metrics implements TriggerObserver {
  readonly registry = new Registry();
  private readonly deploys: Counter<'app' | 'result'>;
  private readonly duration: Histogram<'app'>;
  private readonly deliveries: Counter<'outcome'>;
  private readonly restarts: Counter<'app' | 'color'>;
  private readonly downs: Counter<'app' | 'color' | 'role'>;
  private readonly failovers: Counter<'app'>;
  private readonly bothCrashes: Counter<'app'>;

  constructor(config: Config, queue: TriggerQueue) {
    const registers = [this.registry];
    this.deploys = new Counter({
      name: 'duet_deploys_total',
      help: 'Deploys and rollbacks that finished, by result (succeeded, failed, superseded)',
      labelNames: ['app', 'result'],
      registers,
    });
    this.duration = new Histogram({
      name: 'duet_deploy_duration_seconds',
      help: 'Time from a deploy starting to it finishing',
      labelNames: ['app'],
      // Deploys run from seconds (no install) to many minutes (a cold npm ci and build).
      buckets: [1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200],
      registers,
    });
    new Gauge({
      name: 'duet_queue_depth',
      help: 'Triggers waiting to run, per app',
      labelNames: ['app'],
      registers,
      // Read at scrape time: the queue is the truth, a gauge kept in step could drift from it.
      collect() {
        for (const app of config.apps.keys()) this.set({ app }, queue.depth(app));
      },
    });
    new Gauge({
      name: 'duet_tls_certificate_expiry_timestamp_seconds',
      help: 'When the certificate nginx presents for the app expires, in Unix time (apps with tls that answer a TLS handshake)',
      labelNames: ['app'],
      registers,
      // Asked of nginx at scrape time (a handshake on loopback): what clients get, not what a file says.
      async collect() {
        this.reset();
        for (const app of config.apps.values()) {
          if (app.tls.mode === 'off') continue;
          const served = await servedCertificate(app, 1000);
          if (served) this.set({ app: app.name }, Math.floor(served.notAfter.getTime() / 1000));
        }
      },
    });
    this.deliveries = new Counter({
      name: 'duet_webhook_deliveries_total',
      help: 'GitHub webhook deliveries received, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.restarts = new Counter({
      name: 'duet_instance_restarts_total',
      help: 'Colors duet serve restarted after a crash or a hang',
      labelNames: ['app', 'color'],
      registers,
    });
    this.downs = new Counter({
      name: 'duet_instance_down_total',
      help: 'Times a color was seen to exit or to fail its health check, by its role then',
      labelNames: ['app', 'color', 'role'],
      registers,
    });
    this.bothCrashes = new Counter({
      name: 'duet_both_colors_crashed_total',
      help: 'Episodes of both colors exiting within a minute: a request or the machine, not the version (no failover)',
      labelNames: ['app'],
      registers,
    });
    this.failovers = new Counter({
      name: 'duet_failovers_total',
      help: 'Failovers of the live color to the standby',
      labelNames: ['app'],
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
    // Start every app's series at 0 so that rate() and absent() work before the first deploy.
    for (const app of config.apps.keys()) {
      this.failovers.inc({ app }, 0);
      this.bothCrashes.inc({ app }, 0);
      for (const result of ['succeeded', 'failed', 'errored', 'superseded']) this.deploys.inc({ app, result }, 0);
    }
  }

  colorRestarted(app: string, color: string): void {
    this.restarts.inc({ app, color });
  }

  colorDown(app: string, color: string, role: string): void {
    this.downs.inc({ app, color, role });
  }

  failedOver(app: string): void {
    this.failovers.inc({ app });
  }

  bothCrashed(app: string): void {
    this.bothCrashes.inc({ app });
  }

  finished(trigger: Deploy): void {
    const result = trigger.state;
    if (result !== 'succeeded' && result !== 'failed' && result !== 'errored' && result !== 'superseded') return;
    this.deploys.inc({ app: trigger.app, result });
    if (trigger.startedAt && trigger.finishedAt) {
      const seconds = (Date.parse(trigger.finishedAt) - Date.parse(trigger.startedAt)) / 1000;
      if (Number.isFinite(seconds) && seconds >= 0) this.duration.observe({ app: trigger.app }, seconds);
    }
  }

  /** Called by the webhook receiver for each delivery: accepted, ignored, duplicate, bad-signature, ... */
  recordDelivery(outcome: string): void {
    this.deliveries.inc({ outcome });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
