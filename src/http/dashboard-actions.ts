import type express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { AppConfig, Config } from '../config/load.js';
import { httpStatusOf } from '../error-kinds.js';
import { DuetError, NotLiveError, UnknownAppError } from '../errors.js';
import { resolveRef } from '../instance/checkout.js';
import { defaultRef } from '../pipeline/deploy.js';
import { liveCommitIs } from '../pipeline/rollback.js';
import { pickRelease, releasesView, rollbackTargetOf, type ReleaseView, type RollbackTarget } from '../pipeline/release-pick.js';
import { appStatus, type AppStatus } from '../pipeline/status.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { changedBody, redeployConfirmBody, rollbackConfirmBody } from './action-pages.js';
import { csrfMatches, csrfTokenOf, sessionIdOf } from './auth.js';
import type { Link } from './dashboard-pages.js';
import { noticeBody } from './dashboard-pages.js';
import type { Html } from './html.js';
import { manualFrom, manualRef, submitManual } from './manual.js';

/**
 * The dashboard's buttons: redeploy an app, roll it back to its warm color. Only a signed-in
 * session acts (never a public dashboard's visitor), only through a confirmation page's POST
 * carrying the session's CSRF token, and through the same queue path as the API's calls.
 */

interface ActionContext {
  config: Config;
  queue: TriggerQueue;
  token: string | undefined;
  logger: Logger;
  render(req: Request, res: Response, status: number, title: string, body: Html): void;
  link(req: Request): Link;
}

/** The fields each action's POST takes besides `csrf`: a rollback's `to` names a kept release. */
const FIELDS = { redeploy: ['ref'], rollback: ['from', 'to'] } as const;

export function mountActions(router: express.Router, c: ActionContext, postGuards: RequestHandler[]): void {
  const handle = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    void fn(req, res).catch((error: unknown) => refused(c, req, res, error, next));
  for (const action of ['redeploy', 'rollback'] as const) {
    const confirm = action === 'redeploy' ? confirmRedeploy : confirmRollback;
    router.get(
      `/apps/:app/actions/${action}`,
      handle((req, res) => confirm(c, req, res)),
    );
    router.post(
      `/apps/:app/actions/${action}`,
      ...postGuards,
      handle((req, res) => act(c, req, res, action)),
    );
  }
}

function appOf(c: ActionContext, req: Request): AppConfig {
  const app = c.config.apps.get(String(req.params.app));
  if (!app) throw new UnknownAppError(String(req.params.app));
  return app;
}

/** A query parameter given once; an empty one counts as absent. */
function queryField(req: Request, name: string): string | undefined {
  const value = req.query[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The session's CSRF token, or undefined after sending the sign-in redirect. */
function signedIn(c: ActionContext, req: Request, res: Response): string | undefined {
  const csrf = c.token ? csrfTokenOf(req, c.token) : undefined;
  if (!csrf) res.redirect(303, c.link(req)('/login'));
  return csrf;
}

async function confirmRedeploy(c: ActionContext, req: Request, res: Response): Promise<void> {
  const csrf = signedIn(c, req, res);
  if (!csrf) return;
  const app = appOf(c, req);
  const ref = manualRef(queryField(req, 'ref'));
  const asked = ref ?? defaultRef(app);
  const [status, resolved] = await Promise.all([
    appStatus(c.config, app),
    resolveRef(app.clone_url, asked).catch((error: unknown) => ({ error: error instanceof Error ? error.message : String(error) })),
  ]);
  c.render(req, res, 200, `duet: redeploy ${app.name}?`, redeployConfirmBody({ app: app.name, status, ref, asked, resolved, csrf }, c.link(req)));
}

async function confirmRollback(c: ActionContext, req: Request, res: Response): Promise<void> {
  const csrf = signedIn(c, req, res);
  if (!csrf) return;
  const app = appOf(c, req);
  const from = manualFrom(queryField(req, 'from'), app);
  // The check the queue makes: a page that offers to undo what is no longer live says so at once.
  await liveCommitIs(c.config, app, from);
  const target = releaseTargetOf(queryField(req, 'to'));
  const status = await appStatus(c.config, app);
  // The checks the rollback makes (ABI, a breaking release, disk space), so a refusal shows now.
  const release = target ? await keptReleaseView(c.config, app, status, target) : undefined;
  c.render(req, res, 200, `duet: roll back ${app.name}?`, rollbackConfirmBody({ app: app.name, status, from, release, csrf }, c.link(req)));
}

/** The confirmation's POST: the CSRF token before anything else, then the API's own path into the queue. */
async function act(c: ActionContext, req: Request, res: Response, action: keyof typeof FIELDS): Promise<void> {
  const body = (req.body ?? {}) as Record<string, unknown>;
  if (!c.token || !csrfMatches(req, c.token, body.csrf)) {
    c.logger.warn({ ip: req.ip, url: req.originalUrl }, 'dashboard action refused: no session or a wrong CSRF token');
    return c.render(
      req,
      res,
      403,
      'duet: refused',
      noticeBody('Refused', 'This form is not from a page duet served to your session: nothing was done. Sign in, then start again from the dashboard.'),
    );
  }
  const allowed: readonly string[] = FIELDS[action];
  const unknown = Object.keys(body).find((key) => key !== 'csrf' && !allowed.includes(key));
  if (unknown !== undefined) return c.render(req, res, 400, 'duet: bad request', noticeBody('Bad request', `This form takes no field "${unknown}".`));
  const app = appOf(c, req);
  const requestedBy = `dashboard session ${sessionIdOf(req, c.token)}${req.ip ? ` (${req.ip})` : ''}`;
  const ask =
    action === 'redeploy'
      ? { kind: 'deploy' as const, ref: manualRef(body.ref || null), fromSha: null }
      : { kind: 'rollback' as const, ref: null, fromSha: manualFrom(body.from, app), rollbackTo: releaseTargetOf(body.to || undefined) };
  const result = await submitManual(c.queue, c.logger, { app, ...ask, breaking: false, requestedBy, ip: req.ip });
  res.redirect(303, c.link(req)(`/deploys/${result.id}/view`));
}

function releaseTargetOf(to: unknown): RollbackTarget | undefined {
  return rollbackTargetOf(to, undefined, { to: 'to', steps: 'steps' });
}

async function keptReleaseView(config: Config, app: AppConfig, status: AppStatus, target: RollbackTarget): Promise<ReleaseView> {
  const live = status.enabled ? status.colors[status.enabled].revision : null;
  if (!live) throw new DuetError(`${app.name} has nothing live to roll back from`, { step: 'pick' });
  const picked = await pickRelease(app, live, target);
  const view = (await releasesView(config, app)).find((r) => r.sha === picked.sha);
  if (!view) throw new DuetError(`the kept release ${picked.sha.slice(0, 7)} went away meanwhile`, { step: 'pick' });
  return view;
}

/** duet's refusal as a page (a stale rollback, an unknown app, a full disk); anything else is the router's 500. */
function refused(c: ActionContext, req: Request, res: Response, error: unknown, next: NextFunction): void {
  if (!(error instanceof DuetError) || res.headersSent) return next(error);
  const link = c.link(req);
  const given = req.method === 'POST' ? (req.body as Record<string, unknown> | undefined)?.from : req.query.from;
  const from = typeof given === 'string' ? given : '';
  if (error instanceof NotLiveError) return c.render(req, res, 409, 'duet: changed meanwhile', changedBody(String(req.params.app), from, error.live, link));
  c.logger.warn({ err: error, url: req.originalUrl }, 'dashboard action refused');
  const text = `${error.message}${error.hint ? ` (${error.hint})` : ''}`;
  c.render(req, res, httpStatusOf(error), 'duet: refused', noticeBody('Nothing was done', text));
}
