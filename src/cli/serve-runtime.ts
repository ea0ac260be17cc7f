import { once } from 'node:events';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Secrets } from '../config/secrets.js';
import { createGitHubClient } from '../util/github-client.js';
import { CheckGate } from '../github/check-gate.js';
import { GitHubStatusReporter } from '../github/status-reporter.js';
import { Notifier } from '../notify/notifier.js';
import { DeployQueue } from '../pipeline/queue.js';
import { acquireServeLock } from '../pipeline/serve-lock.js';
import { Supervisor } from '../pipeline/supervision-loop.js';
import { reloadOnHangup } from './serve-reload.js';
import type { SupervisionObserver } from '../pipeline/supervisor.js';
import type { TriggerObserver } from '../pipeline/trigger.js';
import { publicTarget } from '../util/http-probe.js';
import { Metrics } from '../http/metrics.js';
import { createServerApp } from '../http/server.js';

/**
 * `duet serve` wired together: the queue, its observers (commit statuses, metrics) and the HTTP
 * side. Loaded only by `serve`, so that express and Octokit do not slow down every other command.
 */
export async function runServer(config: Config, secrets: Secrets & { webhookSecret: string }, tty: boolean): Promise<void> {
  // First of all: a second server must refuse before it reads the queue or the outbox.
  const lock = await acquireServeLock(config);
  try {
    await serveUntilSignalled(config, secrets, tty);
  } finally {
    // Left behind, it names a process that is gone once this one exits: the next server takes it over.
    await lock.release().catch(() => {});
  }
}

async function serveUntilSignalled(config: Config, secrets: Secrets & { webhookSecret: string }, tty: boolean): Promise<void> {
  const logger = makeLogger(tty);
  const observers: TriggerObserver[] = [];
  let reporter: GitHubStatusReporter | undefined;
  let gate: CheckGate | undefined;
  if (secrets.githubToken) {
    const client = createGitHubClient({ apiUrl: config.github.api_url, token: secrets.githubToken });
    reporter = new GitHubStatusReporter({ config, client, logger, outboxPath: join(config.stateDir, 'github-outbox.ndjson') });
    // deploy_on.wait_for_checks reads CI through its own client: no in-request retries, the next poll is the retry.
    gate = new CheckGate({ config, client: createGitHubClient({ apiUrl: config.github.api_url, token: secrets.githubToken, retries: 0 }), logger });
    observers.push(reporter);
    void reporter.resume();
  } else {
    logger.warn('DUET_GITHUB_TOKEN is not set: no commit statuses are reported to GitHub');
  }
  // No notify: no outbox file, nothing loaded.
  const notifier = config.notify.length > 0 ? await Notifier.open({ config, logger, outboxPath: join(config.stateDir, 'notify-outbox.ndjson') }) : undefined;
  if (notifier) {
    observers.push(notifier);
    await notifier.resume();
  }
  if (!secrets.apiToken) logger.warn('DUET_API_TOKEN is not set: the manual API and the dashboard are disabled');

  const queue = await DeployQueue.open({ config, observers, logger, gate });
  const metrics = new Metrics(config, queue);
  queue.addObserver(metrics);
  const supervisor = await Supervisor.start(config, supervisionObserver(logger, metrics, reporter, notifier));
  const stopReloading = await reloadOnHangup(config, supervisor, logger);
  const app = createServerApp({ config, queue, secrets, logger, metrics });
  const { host, port } = publicTarget(config.server.listen);
  const server: Server = app.listen(port, host);
  await once(server, 'listening');
  logger.info({ listen: `${host}:${port}`, apps: [...config.apps.keys()] }, 'duet serve is listening');
  // What every deploy needs (git, child processes) is loaded now, while nothing waits: the first
  // webhook or API rollback after a start should not pay for it.
  await Promise.all([import('execa'), import('simple-git')]);
  releaseStartupGarbage();

  // Stop taking requests, let a running deploy finish (it holds the lock and a half-done
  // deploy would converge on the next start anyway), deliver what statuses we can, exit.
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'shutting down: waiting for a running deploy to finish');
  server.close();
  server.closeAllConnections();
  stopReloading();
  await supervisor.stop();
  await queue.close();
  await Promise.all([reporter?.flush(5000), notifier?.flush(5000)]);
  await Promise.all([reporter?.close(), notifier?.close()]);
  logger.info('stopped');
}

/** Supervision's news: a log line each, counted in the metrics, a failover also to GitHub and notify. */
function supervisionObserver(
  logger: Logger,
  metrics: Metrics,
  reporter: GitHubStatusReporter | undefined,
  notifier: Notifier | undefined,
): SupervisionObserver {
  const log = logger.child({ component: 'supervision' });
  return {
    colorDown(app, color, role, detail) {
      metrics.colorDown(app.name, color, role);
      log.warn({ app: app.name, color, role }, `${app.name}: ${color} (${role}) ${detail}`);
    },
    colorRestarted(app, color, role, pid, restarts) {
      metrics.colorRestarted(app.name, color);
      log.info({ app: app.name, color, role, pid, restarts }, `${app.name}: restarted ${color} (${role}) as pid ${pid}`);
    },
    colorBack(app, color, role, downMs) {
      log.info({ app: app.name, color, role, downMs }, `${app.name}: ${color} (${role}) is healthy again after ${(downMs / 1000).toFixed(1)} s`);
    },
    failedOver(app, result, reason) {
      metrics.failedOver(app.name);
      log.error(
        { app: app.name, from: result.from, to: result.to, deploy: result.id, reason },
        `${app.name}: FAILOVER from ${result.from} to ${result.to}: ${reason}`,
      );
      reporter?.failedOver(app, result, reason);
      notifier?.failedOver(app, result, reason);
    },
    bothCrashed(app, detail) {
      metrics.bothCrashed(app.name);
      log.error(
        { app: app.name, detail },
        `${app.name}: BOTH COLORS CRASHED within a minute (${detail}): a request or the machine, not the version; no failover, both restarted`,
      );
    },
    problem(app, message) {
      log.error({ app: app.name }, `${app.name}: ${message}`);
    },
  };
}

/**
 * One full garbage collection once started: loading and compiling duet leaves garbage that V8
 * would otherwise free only when its memory reducer runs, some time later. So
 * the footprint an operator sees right after a start is the one duet keeps while idle. Needs
 * --expose-gc (SERVE_NODE_FLAGS, as the units run it); without it, V8 frees that memory itself.
 */
function releaseStartupGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

/** JSON lines on stdout for journald and log shippers; readable lines for a person at a terminal. */
function makeLogger(tty: boolean): Logger {
  return tty ? pino({ transport: { target: 'pino-pretty', options: { destination: 1 } } }) : pino(pino.destination(1));
}
