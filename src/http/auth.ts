import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Who may use the API and the dashboard: whoever knows DUET_API_TOKEN. Scripts send it as a bearer
 * token; a browser signs in once and then carries a session cookie derived from it. Without a
 * configured token nothing is open: duet deploys code, so "no token" must never mean "no check".
 */

const SESSION_COOKIE = 'duet_session';
/** A stolen cookie stops working after this; rotating the token invalidates every session at once. */
export const SESSION_MAX_AGE_S = 30 * 24 * 3600;

/**
 * Compare two secrets in constant time. Hashing first gives both sides the same length, so neither
 * the comparison nor an early length mismatch tells an attacker how long the token is.
 */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750). */
function bearerToken(req: Request): string | undefined {
  const header = req.get('authorization');
  const match = header ? /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header) : null;
  return match?.[1];
}

function sessionMac(token: string, expires: number): string {
  // Keyed by the token itself: the server keeps no session store, and the cookie never holds the token.
  return createHmac('sha256', token).update(`duet-dashboard-session:v1:${expires}`).digest('base64url');
}

/** A cookie value proving the holder knew `token` until `expires` (unix seconds). */
export function makeSession(token: string, now = Date.now()): string {
  const expires = Math.floor(now / 1000) + SESSION_MAX_AGE_S;
  return `v1.${expires}.${sessionMac(token, expires)}`;
}

function isValidSession(value: string | undefined, token: string): boolean {
  const match = value ? /^v1\.(\d{1,12})\.([\w-]{43})$/.exec(value) : null;
  if (!match) return false;
  const expires = Number(match[1]);
  if (expires * 1000 <= Date.now()) return false;
  return safeEqual(match[2]!, sessionMac(token, expires));
}

/** One cookie from the Cookie header; a tiny parser because cookie-parser is not a dependency. */
function readCookie(req: Request, name: string): string | undefined {
  const header = req.get('cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The request reached us over https (directly, or through a proxy that says so). */
function cameOverHttps(req: Request): boolean {
  const forwarded = req.get('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  return req.secure || forwarded === 'https';
}

/**
 * `httpsPublic`: server.public_url is https. Then the cookie is Secure whatever the proxy in front
 * says, so that a proxy that does not send X-Forwarded-Proto cannot leave it readable over http.
 */
export function sessionCookie(req: Request, value: string, maxAgeS: number, httpsPublic = false): string {
  // Path=/ so that the API (possibly mounted elsewhere) sees it for the dashboard's own GETs.
  const parts = [`${SESSION_COOKIE}=${value}`, 'Path=/', `Max-Age=${maxAgeS}`, 'HttpOnly', 'SameSite=Strict'];
  if (httpsPublic || cameOverHttps(req)) parts.push('Secure');
  return parts.join('; ');
}

/** The session cookie's value when it proves the token, else undefined. */
function validSession(req: Request, token: string): string | undefined {
  const value = readCookie(req, SESSION_COOKIE);
  return isValidSession(value, token) ? value : undefined;
}

/**
 * The CSRF token of the dashboard's forms that act (redeploy, roll back): derived from the session,
 * so it needs no store, differs per session and dies with it. Another site can make a browser post
 * a form, but cannot read a page of duet to learn this.
 */
export function csrfTokenOf(req: Request, token: string): string | undefined {
  const session = validSession(req, token);
  return session && createHmac('sha256', token).update(`duet-dashboard-csrf:v1:${session}`).digest('base64url');
}

/** `given` is this session's CSRF token (compared in constant time); false without a session. */
export function csrfMatches(req: Request, token: string, given: unknown): boolean {
  const expected = csrfTokenOf(req, token);
  return expected !== undefined && typeof given === 'string' && safeEqual(given, expected);
}

/**
 * Who asked, as far as duet can tell: every session knows the one token, so a session is the
 * identity there is. A digest of its cookie tells sessions apart in the journal without being one.
 */
export function sessionIdOf(req: Request, token: string): string | undefined {
  const session = validSession(req, token);
  return session && createHash('sha256').update(session).digest('hex').slice(0, 8);
}

type Credential = 'bearer' | 'session' | undefined;

/** How the request proves it knows the token, if it does. */
export function credentialOf(req: Request, token: string): Credential {
  const bearer = bearerToken(req);
  if (bearer !== undefined && safeEqual(bearer, token)) return 'bearer';
  if (validSession(req, token)) return 'session';
  return undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);

export const TOKEN_UNSET_MESSAGE = 'the API is disabled: set DUET_API_TOKEN in the environment of duet serve';

/**
 * Express middleware for the API. The session cookie counts only for reading (GET/HEAD): a deploy
 * is always asked for with the bearer token, so no page in any browser can trigger one (CSRF).
 */
export function requireToken(token: string | undefined): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!token) {
      res.status(503).json({ error: TOKEN_UNSET_MESSAGE });
      return;
    }
    const credential = credentialOf(req, token);
    if (credential === 'bearer' || (credential === 'session' && SAFE_METHODS.has(req.method))) {
      next();
      return;
    }
    const sent = bearerToken(req) !== undefined;
    res
      .status(401)
      .set('WWW-Authenticate', sent ? 'Bearer realm="duet", error="invalid_token"' : 'Bearer realm="duet"')
      .json({ error: sent ? 'wrong bearer token' : 'missing bearer token: send "Authorization: Bearer $DUET_API_TOKEN"' });
  };
}
