import express from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Secrets } from '../config/secrets.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { apiRouter, jsonNotFound } from './api.js';
import { dashboardRouter } from './dashboard.js';
import type { Metrics } from './metrics.js';
import { webhookRouter } from './receiver.js';

interface ServerOptions {
  config: Config;
  queue: TriggerQueue;
  secrets: Secrets & { webhookSecret: string };
  logger: Logger;
  metrics: Metrics;
}

/**
 * The HTTP side of `duet serve`: the GitHub webhook, the manual and read API, metrics and the
 * dashboard. Each router parses its own bodies, so the webhook sees the exact raw bytes it must
 * verify and no JSON parser consumes them first.
 */
export function createServerApp(options: ServerOptions): express.Express {
  const { config, queue, secrets, logger, metrics } = options;
  const app = express();
  app.disable('x-powered-by');
  // Behind nginx or a tunnel: the client's scheme (for Secure cookies) comes from the proxy.
  app.set('trust proxy', 'loopback');
  // JSON and text answers too (the dashboard's pages set it themselves): nothing is sniffed as HTML.
  app.use((_req, res, next) => {
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(
    webhookRouter({
      config,
      secret: secrets.webhookSecret,
      queue,
      logger,
      onDelivery: (outcome) => metrics.recordDelivery(outcome),
    }),
  );
  // The dashboard goes first: /deploys/:id shows a page to browsers and passes JSON clients on.
  app.use(dashboardRouter({ config, queue, token: secrets.apiToken, logger }));
  app.use(apiRouter({ config, queue, token: secrets.apiToken, logger, metrics }));
  app.use(jsonNotFound);
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    logger.error({ err: error.message }, 'request failed');
    if (!res.headersSent) res.status(500).json({ error: "internal error; see duet serve's log" });
  });
  return app;
}
