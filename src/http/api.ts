import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import { httpStatusOf } from '../error-kinds.js';
import { DuetError, InvalidInputError, NotLiveError, UnknownAppError } from '../errors.js';
import { releasesView, rollbackTargetOf, type RollbackTarget } from '../pipeline/release-pick.js';
import { appStatus } from '../pipeline/status.js';
import type { TriggerKind, TriggerQueue } from '../pipeline/trigger.js';
import { requireToken } from './auth.js';
import { deployView, findDeploy } from './deploys.js';
import { errorBody } from './error-paths.js';
import { streamDeployLog } from './log-tail.js';
import { manualFrom, manualRef, submitManual } from './manual.js';
import { Metrics } from './metrics.js';

/**
 * The manual and read API of `duet serve`. Every route carries its own middleware instead of
 * `router.use(...)`: the router may share a mount point with the dashboard, and router-wide
 * middleware would run (and answer 401) for the dashboard's requests too.
 */

interface ApiOptions {
  config: Config;
  queue: TriggerQueue;
  token: string | undefined;
  logger: Logger;
  /** The instance registered as the queue's observer; without one, deploy counters stay at 0. */
  metrics?: Metrics;
  /** Log tailing poll interval (tests shorten it). */
  logPollMs?: number;
}

/**
 * An answer of HTTP itself (a body that is not JSON, a deploy id nobody has): not an error of
 * duet's, whose answers come from their kind (error-kinds.ts).
 */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function apiRouter(options: ApiOptions): express.Router {
  const { config, queue, logger } = options;
  const metrics = options.metrics ?? new Metrics(config, queue);
  const router = express.Router();
  const auth = requireToken(options.token);
  const json = express.json({ limit: '16kb' });

  const appOf = (req: Request): AppConfig => {
    const app = config.apps.get(String(req.params.app));
    if (!app) throw new UnknownAppError(String(req.params.app));
    return app;
  };

  const submit =
    (kind: TriggerKind): RequestHandler =>
    async (req, res) => {
      const app = appOf(req);
      // A body that is not JSON (a form post, say) would be ignored and deploy the default branch.
      // (An empty body, Content-Length: 0, is fine: it means "the default branch".)
      if (req.is('application/json') === false && req.get('content-length') !== '0') {
        throw new HttpError(415, 'send the body as application/json');
      }
      const ref = kind === 'deploy' ? manualRef(bodyField(req.body, 'ref', '{"ref": "v1.2.0"}')) : null;
      const fromSha = kind === 'rollback' ? manualFrom(bodyField(req.body, 'from', '{"from": "3f2a9c1"}'), app) : null;
      const rollbackTo = kind === 'rollback' ? targetOfBody(req.body) : undefined;
      const breaking = kind === 'deploy' && flagOfBody(req.body, 'breaking');
      // deploy_on.wait_for_checks: a redeploy waits for CI too, unless told not to (journaled in the trigger).
      const skipChecks = kind === 'deploy' && flagOfBody(req.body, 'skip_checks');
      const result = await submitManual(queue, logger, { app, kind, ref, fromSha, rollbackTo, breaking, skipChecks, requestedBy: 'API', ip: req.ip });
      res
        .status(202)
        .location(`${req.baseUrl}/deploys/${result.id}`)
        .json({ deploy: result.id, created: result.created, ...(result.reason ? { reason: result.reason } : {}) });
    };

  router.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });

  router.post('/apps/:app/deploy', auth, json, submit('deploy'));
  router.post('/apps/:app/rollback', auth, json, submit('rollback'));
  router.post('/apps/:app/restart', auth, json, submit('restart'));

  router.get('/apps/:app/releases', auth, async (req, res) => {
    res.json({ releases: await releasesView(config, appOf(req)) });
  });

  router.get('/apps/:app/status', auth, async (req, res) => {
    res.json(await appStatus(config, appOf(req)));
  });

  router.get('/deploys/:id', auth, async (req, res) => {
    const found = await findDeploy(config, String(req.params.id));
    if (!found) throw new HttpError(404, 'no such deploy');
    res.json({ ...deployView(found.deploy), log: `${req.baseUrl}/deploys/${found.deploy.id}/log` });
  });

  router.get('/deploys/:id/log', auth, async (req, res) => {
    const found = await findDeploy(config, String(req.params.id));
    if (!found) throw new HttpError(404, 'no such deploy');
    await streamDeployLog(res, { config, found, pollMs: options.logPollMs });
  });

  router.get('/metrics', auth, async (_req, res) => {
    res.type(metrics.contentType).send(await metrics.text());
  });

  router.use(apiErrors(logger, config.stateDir));
  return router;
}

/** The fields a trigger's body may have: a deploy's ref, breaking and skip_checks, a rollback's from and its kept release (to or steps). */
const DEPLOY_FIELDS = ['ref', 'breaking', 'skip_checks'] as const;
const ROLLBACK_FIELDS = ['from', 'to', 'steps'] as const;
const BODY_FIELDS = {
  ref: DEPLOY_FIELDS,
  breaking: DEPLOY_FIELDS,
  skip_checks: DEPLOY_FIELDS,
  from: ROLLBACK_FIELDS,
  to: ROLLBACK_FIELDS,
  steps: ROLLBACK_FIELDS,
} as const;
const ROLLBACK_EXAMPLE = '{"from": "3f2a9c1", "steps": 1}';

/** A field of a trigger's body; undefined without a body. */
function bodyField(body: unknown, field: keyof typeof BODY_FIELDS, example: string): unknown {
  if (body === undefined) return undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidInputError(`the body must be a JSON object such as ${example}`);
  const allowed: readonly string[] = BODY_FIELDS[field];
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0)
    throw new InvalidInputError(`unknown field ${JSON.stringify(unknown[0])}: the body takes only ${allowed.map((f) => `"${f}"`).join(' and ')}`);
  return (body as Record<string, unknown>)[field];
}

/** A rollback's kept release: `{"to": "<commit or ref>"}` or `{"steps": N}`; neither: the standby color's. */
function targetOfBody(body: unknown): RollbackTarget | undefined {
  return rollbackTargetOf(bodyField(body, 'to', ROLLBACK_EXAMPLE), bodyField(body, 'steps', ROLLBACK_EXAMPLE), { to: '"to"', steps: '"steps"' });
}

function flagOfBody(body: unknown, name: 'breaking' | 'skip_checks'): boolean {
  const flag = bodyField(body, name, `{"ref": "v2.0.0", "${name}": true}`);
  if (flag === undefined || flag === null) return false;
  if (typeof flag !== 'boolean') throw new InvalidInputError(`"${name}" must be true or false`);
  return flag;
}

/**
 * Errors of this router as JSON; internal details go to the log, not to the client, and so do
 * the paths of this machine an error names (error-paths.ts).
 */
function apiErrors(logger: Logger, stateDir: string): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, _next) => {
    if (res.headersSent) {
      // A log stream failed halfway: the status line is gone, all we can do is cut it short.
      logger.error({ err: error, url: req.originalUrl }, 'API response failed after it started');
      res.destroy();
      return;
    }
    const answer = (status: number, body: Record<string, unknown>): void => void res.status(status).json(errorBody(body, stateDir));
    if (error instanceof HttpError) {
      answer(error.status, { error: error.message });
      return;
    }
    // express.json: malformed JSON, body too large, unsupported charset.
    const status = (error as { status?: unknown }).status;
    const type = (error as { type?: unknown }).type;
    if (typeof status === 'number' && status >= 400 && status < 500 && typeof type === 'string') {
      answer(status, { error: (error as Error).message });
      return;
    }
    // The queue refusing a trigger for a reason it explains: the caller is authenticated, tell it.
    if (error instanceof DuetError) {
      logger.warn({ err: error, url: req.originalUrl }, 'API request refused');
      const live = error instanceof NotLiveError ? { live: error.live } : {};
      answer(httpStatusOf(error), { error: error.message, ...live, ...(error.hint ? { hint: error.hint } : {}) });
      return;
    }
    logger.error({ err: error, url: req.originalUrl }, 'API request failed');
    answer(httpStatusOf(error), { error: 'internal error; see the duet serve log' });
  };
}

/** Mount last: unknown paths answer JSON rather than express's HTML page. */
export const jsonNotFound: RequestHandler = (_req, res) => {
  res.status(404).json({ error: 'not found' });
};
