import { open } from 'node:fs/promises';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { deployLogPath } from '../pipeline/deploy-log.js';
import { appStatus } from '../pipeline/status.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { credentialOf, makeSession, safeEqual, SESSION_MAX_AGE_S, sessionCookie, TOKEN_UNSET_MESSAGE } from './auth.js';
import { deployBody, indexBody, loginBody, type AppPanel, type Link } from './dashboard-pages.js';
import { isFinal } from '../pipeline/deploy-state.js';
import { findDeploy, recentDeploys, viewOf, type FoundDeploy } from './deploys.js';
import { html, page, sendPage, type Html } from './html.js';
import { sameOriginForms, SignInLimiter } from './sign-in-guard.js';
import { streamDeployLog } from './log-tail.js';

/**
 * The dashboard: server-rendered pages, no script, no external assets, so it works from a phone
 * on a bad connection and needs no build step. Like the API router, every route carries its own
 * middleware because the two routers may be mounted at the same path.
 */

export interface DashboardOptions {
  config: Config;
  queue: TriggerQueue;
  token: string | undefined;
  logger: Logger;
  /** How many recent deploys each app lists. */
  recent?: number;
  signInLimiter?: SignInLimiter;
}

/** The deploy page shows the end of the log inline; the raw log link has all of it. */
const LOG_TAIL_BYTES = 64 * 1024;
const REFRESH_S = 2;

export function dashboardRouter(options: DashboardOptions): express.Router {
  const { config, queue, token, logger } = options;
  const isPublic = config.server.public_dashboard;
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 5 });
  const link =
    (req: Request): Link =>
    (path) =>
      `${req.baseUrl}${path}`;
  const httpsPublic = config.server.public_url?.startsWith('https:') ?? false;
  const sameOrigin = sameOriginForms(config.server.public_url);
  const limiter = options.signInLimiter ?? new SignInLimiter();

  const render = (req: Request, res: Response, status: number, title: string, body: Html, refreshS?: number): void => {
    const signedIn = !isPublic && token !== undefined && credentialOf(req, token) === 'session';
    sendPage(res, status, page({ title, body, refreshS, home: link(req)('/'), logoutAction: signedIn ? link(req)('/logout') : undefined }));
  };

  /** Signed in, or a public dashboard; otherwise to the sign-in form. */
  const gate: RequestHandler = (req, res, next) => {
    if (isPublic) return next();
    if (!token)
      return render(req, res, 503, 'duet: not configured', html`<section class="card"><h2>Dashboard disabled</h2><p>${TOKEN_UNSET_MESSAGE}.</p></section>`);
    if (credentialOf(req, token)) return next();
    res.redirect(303, link(req)('/login'));
  };

  router.get('/login', (req, res) => {
    if (!token)
      return render(req, res, 503, 'duet: not configured', html`<section class="card login"><h2>Sign-in disabled</h2><p>${TOKEN_UNSET_MESSAGE}.</p></section>`);
    render(req, res, 200, 'duet: sign in', loginBody(link(req)('/login'), undefined));
  });

  router.post('/login', sameOrigin, form, (req, res) => {
    if (!token)
      return render(req, res, 503, 'duet: not configured', html`<section class="card login"><h2>Sign-in disabled</h2><p>${TOKEN_UNSET_MESSAGE}.</p></section>`);
    const client = req.ip ?? 'unknown';
    const waitS = limiter.retryAfterS(client);
    if (waitS > 0) {
      res.set('Retry-After', String(waitS));
      return render(req, res, 429, 'duet: sign in', loginBody(link(req)('/login'), `Too many wrong tokens: try again in ${waitS} s.`));
    }
    const given = (req.body as Record<string, unknown> | undefined)?.token;
    if (typeof given !== 'string' || !safeEqual(given, token)) {
      limiter.failed(client);
      logger.warn({ ip: client }, 'dashboard sign-in with a wrong token');
      return render(req, res, 401, 'duet: sign in', loginBody(link(req)('/login'), 'That is not the token duet serve was started with.'));
    }
    limiter.succeeded(client);
    res.set('Set-Cookie', sessionCookie(req, makeSession(token), SESSION_MAX_AGE_S, httpsPublic)).redirect(303, link(req)('/'));
  });

  router.post('/logout', sameOrigin, (req, res) => {
    res.set('Set-Cookie', sessionCookie(req, '', 0, httpsPublic)).redirect(303, link(req)(isPublic ? '/' : '/login'));
  });

  router.get('/', gate, async (req, res) => {
    const limit = options.recent ?? 10;
    const panels = await Promise.all(
      [...config.apps.values()].map(async (app): Promise<AppPanel> => {
        const [status, deploys] = await Promise.all([
          appStatus(config, app).catch((error: unknown) => ({ error: error instanceof Error ? error.message : String(error) })),
          recentDeploys(queue, app, limit),
        ]);
        const running = deploys.find((d) => d.state === 'running');
        return { name: app.name, status, queued: queue.depth(app.name), running, deploys };
      }),
    );
    const busy = panels.some((p) => p.running || p.queued > 0 || ('deploying' in p.status && p.status.deploying));
    render(req, res, 200, 'duet', indexBody(panels, link(req)), busy ? REFRESH_S * 5 : undefined);
  });

  const deployPage: RequestHandler = async (req, res) => {
    const found = await findDeploy(config, queue, String(req.params.id));
    if (!found)
      return render(
        req,
        res,
        404,
        'duet: no such deploy',
        html`<section class="card"><h2>No such deploy</h2><p><a href="${link(req)('/')}">All apps</a></p></section>`,
      );
    const view = viewOf(found);
    const log = await readLogTail(found);
    render(req, res, 200, `duet: ${view.kind} ${view.id}`, deployBody(view, log, link(req)), isFinal(view.state) ? undefined : REFRESH_S);
  };

  router.get('/deploys/:id/view', gate, deployPage);
  // Commit statuses link to <public_url>/deploys/<id>: a browser gets the page, API clients
  // (Accept: application/json, or anything not preferring HTML) fall through to the API router.
  router.get('/deploys/:id', (req, res, next) => {
    if (req.accepts(['json', 'html']) !== 'html') return next();
    gate(req, res, () => void Promise.resolve(deployPage(req, res, next)).catch(next));
  });

  router.get('/deploys/:id/log.txt', gate, async (req, res) => {
    const found = await findDeploy(config, queue, String(req.params.id));
    if (!found) return render(req, res, 404, 'duet: no such deploy', html`<section class="card"><h2>No such deploy</h2></section>`);
    await streamDeployLog(res, { queue, found });
  });

  router.use(dashboardErrors(logger));
  return router;
}

/** The last LOG_TAIL_BYTES of a deploy's log, cut at a line start; undefined when there is none yet. */
async function readLogTail(found: FoundDeploy): Promise<{ text: string; truncated: boolean } | undefined> {
  let handle;
  try {
    handle = await open(deployLogPath(found.app, found.id), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - LOG_TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    let text = buffer.subarray(0, bytesRead).toString('utf8');
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    return { text, truncated: start > 0 };
  } finally {
    await handle.close();
  }
}

function dashboardErrors(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, _next) => {
    if (res.headersSent) {
      logger.error({ err: error, url: req.originalUrl }, 'dashboard response failed after it started');
      res.destroy();
      return;
    }
    // A form the body parser refused (too large, too many fields): the client's mistake.
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendPage(
        res,
        status,
        page({
          title: 'duet: bad request',
          home: `${req.baseUrl}/`,
          body: html`<section class="card"><h2>Bad request</h2><p>${(error as Error).message}</p></section>`,
        }),
      );
      return;
    }
    logger.error({ err: error, url: req.originalUrl }, 'dashboard request failed');
    sendPage(
      res,
      500,
      page({
        title: 'duet: error',
        home: `${req.baseUrl}/`,
        body: html`<section class="card"><h2>Something went wrong</h2><p>See the log of duet serve.</p></section>`,
      }),
    );
  };
}
