import type { Request, RequestHandler } from 'express';

/**
 * What stands between the network and guessing DUET_API_TOKEN through the sign-in form, and
 * between another site and the dashboard's forms.
 */

interface SignInLimits {
  /** Wrong tokens a client may send before it has to wait. */
  freeFailures: number;
  /** The first wait; each further wrong token doubles it, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /**
   * Wrong tokens from all clients together per minute; past it a wrong token makes its client
   * wait at once, without free failures: a guesser with many addresses gets one try from each
   * before it waits.
   */
  globalPerMinute: number;
}

const SIGN_IN_LIMITS: SignInLimits = { freeFailures: 5, baseDelayMs: 1000, maxDelayMs: 15 * 60_000, globalPerMinute: 30 };

/** Clients remembered at most; the oldest are forgotten first (an attacker's spread of addresses). */
const MAX_CLIENTS = 10_000;

interface Client {
  failures: number;
  blockedUntil: number;
}

/**
 * Failed sign-ins per client address with exponential backoff, tightened while wrong tokens come
 * from everywhere. Only wrong tokens count, and only a client's own wait keeps its token from
 * being checked: a right token clears the client, and a flood of wrong ones from rotating
 * addresses never keeps the operator, on an address of their own, from signing in.
 */
export class SignInLimiter {
  private readonly clients = new Map<string, Client>();
  private globalWindowStart = 0;
  private globalFailures = 0;

  constructor(
    private readonly limits: SignInLimits = SIGN_IN_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds this client must wait before its next token is looked at, or 0. */
  retryAfterS(client: string): number {
    const at = this.now();
    const until = this.clients.get(client)?.blockedUntil ?? 0;
    return until > at ? Math.ceil((until - at) / 1000) : 0;
  }

  failed(client: string): void {
    const at = this.now();
    if (at - this.globalWindowStart >= 60_000) {
      this.globalWindowStart = at;
      this.globalFailures = 0;
    }
    this.globalFailures++;
    const free = this.globalFailures > this.limits.globalPerMinute ? 0 : this.limits.freeFailures;
    const entry = this.clients.get(client) ?? { failures: 0, blockedUntil: 0 };
    this.clients.delete(client); // re-inserted last: Map order is the eviction order
    entry.failures++;
    const over = entry.failures - free;
    if (over > 0) entry.blockedUntil = at + Math.min(this.limits.maxDelayMs, this.limits.baseDelayMs * 2 ** Math.min(over - 1, 30));
    this.clients.set(client, entry);
    if (this.clients.size > MAX_CLIENTS) this.clients.delete(this.clients.keys().next().value!);
  }

  succeeded(client: string): void {
    this.clients.delete(client);
  }
}

/**
 * The dashboard's forms (sign-in, sign-out) are answered only for pages of duet itself. Browsers
 * send Sec-Fetch-Site and Origin on every cross-site POST; a request with neither comes from a
 * script (curl), which a forged page cannot make a browser send. SameSite=Strict alone does not
 * stop a cross-site sign-out: clearing a cookie needs no cookie.
 */
export function sameOriginForms(publicUrl: string | undefined): RequestHandler {
  const publicHost = publicUrl ? new URL(publicUrl).host : undefined;
  return (req, res, next) => {
    if (isSameOrigin(req, publicHost)) return next();
    res.status(403).type('text/plain').send('refused: this form was posted from another site\n');
  };
}

function isSameOrigin(req: Request, publicHost: string | undefined): boolean {
  const site = req.get('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.get('origin');
  if (origin === undefined) return true;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false; // "null" (a sandboxed or privacy-stripped origin) included
  }
  return host === req.get('host') || host === publicHost;
}
