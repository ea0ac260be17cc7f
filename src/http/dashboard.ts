import { open } from 'node:fs/promises';
import express, { type ErrorRequestHandler, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { deployLogPath } from '../pipeline/deploy-log.js';
import { appStatus } from '../pipeline/status.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { mountActions } from './dashboard-actions.js';
import { credentialOf, makeSession, safeEqual, SESSION_MAX_AGE_S, sessionCookie, TOKEN_UNSET_MESSAGE } from './auth.js';
import { releasesView } from '../pipeline/release-pick.js';
import { deployBody, indexBody, loginBody, noticeBody, type AppPanel, type Link } from './dashboard-pages.js';
import { isFinal } from '../pipeline/deploy-state.js';
import { deployView, findDeploy, recentDeploys, type FoundDeploy } from './deploys.js';
import { html, page, sendPage, type Html } from './html.js';
import { sameOriginForms, SignInLimiter } from './sign-in-guard.js';
import { streamDeployLog } from './log-tail.js';

/**
 * The dashboard: server-rendered pages, no script, no external assets, so it works from a phone
 * on a bad connection and needs no build step. Like the API router, every route carries its own
 * middleware because the two routers may be mounted at the same path.
 */

interface DashboardOptions {
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

interface Dashboard extends DashboardOptions {
  isPublic: boolean;
  httpsPublic: boolean;
  limiter: SignInLimiter;
}

export function dashboardRouter(options: DashboardOptions): express.Router {
  const d: Dashboard = {
    ...options,
    isPublic: options.config.server.public_dashboard,
    httpsPublic: options.config.server.public_url?.startsWith('https:') ?? false,
    limiter: options.signInLimiter ?? new SignInLimiter(),
  };
  const sameOrigin = sameOriginForms(d.config.server.public_url);
  const form = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 5 });
  const gated = (handler: RequestHandler) => (req: Request, res: Response, next: NextFunction) =>
    gate(d, req, res, () => void Promise.resolve(handler(req, res, next)).catch(next));
  const deployPage = gated((req, res) => showDeploy(d, req, res));

  const router = express.Router();
  router.get('/login', (req, res) =>
    d.token ? render(d, req, res, 200, 'duet: sign in', loginBody(link(req)('/login'), undefined)) : disabled(d, req, res, 'Sign-in'),
  );
  router.post('/login', sameOrigin, form, (req, res) => signIn(d, req, res));
  router.post('/logout', sameOrigin, (req, res) => {
    res.set('Set-Cookie', sessionCookie(req, '', 0, d.httpsPublic)).redirect(303, link(req)(d.isPublic ? '/' : '/login'));
  });
  router.get(
    '/',
    gated((req, res) => showIndex(d, req, res)),
  );
  router.get('/deploys/:id/view', deployPage);
  // Commit statuses link to <public_url>/deploys/<id>: a browser gets the page, API clients
  // (Accept: application/json, or anything not preferring HTML) fall through to the API router.
  router.get('/deploys/:id', (req, res, next) => (req.accepts(['json', 'html']) !== 'html' ? next() : deployPage(req, res, next)));
  router.get(
    '/deploys/:id/log.txt',
    gated(async (req, res) => {
      const found = await findDeploy(d.config, String(req.params.id));
      if (!found) return render(d, req, res, 404, 'duet: no such deploy', noticeBody('No such deploy'));
      await streamDeployLog(res, { config: d.config, found });
    }),
  );
  mountActions(router, { ...d, render: (req, res, status, title, body) => render(d, req, res, status, title, body), link }, [sameOrigin, form]);
  router.use(dashboardErrors(d.logger));
  return router;
}

const link =
  (req: Request): Link =>
  (path) =>
    `${req.baseUrl}${path}`;

function render(d: Dashboard, req: Request, res: Response, status: number, title: string, body: Html, refreshS?: number): void {
  const signedIn = isSignedIn(d, req);
  sendPage(res, status, page({ title, body, refreshS, home: link(req)('/'), logoutAction: signedIn ? link(req)('/logout') : undefined }));
}

/** A session of the sign-in form (on a public dashboard too): it may sign out, and act. */
function isSignedIn(d: Dashboard, req: Request): boolean {
  return d.token !== undefined && credentialOf(req, d.token) === 'session';
}

/** Without a token nobody can sign in: the page says so instead of a form that cannot work. */
function disabled(d: Dashboard, req: Request, res: Response, what: 'Dashboard' | 'Sign-in'): void {
  const cardClass = what === 'Sign-in' ? 'card login' : 'card';
  render(d, req, res, 503, 'duet: not configured', noticeBody(`${what} disabled`, `${TOKEN_UNSET_MESSAGE}.`, cardClass));
}

/** Signed in, or a public dashboard; otherwise to the sign-in form. */
function gate(d: Dashboard, req: Request, res: Response, next: () => void): void {
  if (d.isPublic) return next();
  if (!d.token) return disabled(d, req, res, 'Dashboard');
  if (credentialOf(req, d.token)) return next();
  res.redirect(303, link(req)('/login'));
}

function signIn(d: Dashboard, req: Request, res: Response): void {
  if (!d.token) return disabled(d, req, res, 'Sign-in');
  const client = req.ip ?? 'unknown';
  const waitS = d.limiter.retryAfterS(client);
  if (waitS > 0) {
    res.set('Retry-After', String(waitS));
    return render(d, req, res, 429, 'duet: sign in', loginBody(link(req)('/login'), `Too many wrong tokens: try again in ${waitS} s.`));
  }
  const given = (req.body as Record<string, unknown> | undefined)?.token;
  if (typeof given !== 'string' || !safeEqual(given, d.token)) {
    d.limiter.failed(client);
    d.logger.warn({ ip: client }, 'dashboard sign-in with a wrong token');
    return render(d, req, res, 401, 'duet: sign in', loginBody(link(req)('/login'), 'That is not the token duet serve was started with.'));
  }
  d.limiter.succeeded(client);
  res.set('Set-Cookie', sessionCookie(req, makeSession(d.token), SESSION_MAX_AGE_S, d.httpsPublic)).redirect(303, link(req)('/'));
}

async function showIndex(d: Dashboard, req: Request, res: Response): Promise<void> {
  const limit = d.recent ?? 10;
  const actions = isSignedIn(d, req);
  const panels = await Promise.all(
    [...d.config.apps.values()].map(async (app): Promise<AppPanel> => {
      const [status, deploys, releases] = await Promise.all([
        appStatus(d.config, app).catch((error: unknown) => ({ error: error instanceof Error ? error.message : String(error) })),
        recentDeploys(d.config, app, limit),
        actions ? releasesView(d.config, app).catch(() => []) : [],
      ]);
      const running = deploys.find((x) => x.state === 'running');
      return { name: app.name, status, queued: d.queue.depth(app.name), running, deploys, actions, releases };
    }),
  );
  const busy = panels.some((p) => p.running || p.queued > 0 || ('deploying' in p.status && p.status.deploying));
  render(d, req, res, 200, 'duet', indexBody(panels, link(req)), busy ? REFRESH_S * 5 : undefined);
}

async function showDeploy(d: Dashboard, req: Request, res: Response): Promise<void> {
  const found = await findDeploy(d.config, String(req.params.id));
  if (!found) return render(d, req, res, 404, 'duet: no such deploy', noticeBody('No such deploy', html`<a href="${link(req)('/')}">All apps</a>`));
  const view = deployView(found.deploy);
  const log = await readLogTail(found);
  render(d, req, res, 200, `duet: ${view.kind} ${view.id}`, deployBody(view, log, link(req)), isFinal(view.state) ? undefined : REFRESH_S);
}

/** The last LOG_TAIL_BYTES of a deploy's log, cut at a line start; undefined when there is none yet. */
async function readLogTail(found: FoundDeploy): Promise<{ text: string; truncated: boolean } | undefined> {
  let handle;
  try {
    handle = await open(deployLogPath(found.app, found.deploy.id), 'r');
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
      return sendPage(res, status, page({ title: 'duet: bad request', home: `${req.baseUrl}/`, body: noticeBody('Bad request', (error as Error).message) }));
    }
    logger.error({ err: error, url: req.originalUrl }, 'dashboard request failed');
    sendPage(res, 500, page({ title: 'duet: error', home: `${req.baseUrl}/`, body: noticeBody('Something went wrong', 'See the log of duet serve.') }));
  };
}
