import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Webhooks } from '@octokit/webhooks';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { UnavailableError } from '../errors.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { errorBody } from './error-paths.js';
import { decideEvent, WebhookPayloadError, type EventDecision } from './events.js';
import { RefusalHold } from './refusal-hold.js';
import { RejectionLog } from './rejection-log.js';
import { BodyBudget, BUSY_RETRY_AFTER_S, readSignedBody, UNVERIFIED_LIMITS, type BodyRefusal } from './signed-body.js';

/**
 * POST /webhook: GitHub deliveries in, triggers out.
 *
 * The order of checks, each answered with JSON GitHub shows in the delivery view:
 *   415  content type is not application/json, or a Content-Encoding: answered from the headers,
 *        before the body is read (and it names the fix in GitHub).
 *   401  X-Hub-Signature-256 missing: also from the headers, so an unsigned request costs no read.
 *   413  body over 25 MB (GitHub's own cap): from Content-Length, or counted while reading.
 *   503  the budget for unverified bodies of all requests together is spent (+ Retry-After).
 *   408  the body took longer than GitHub ever would.
 *   400  empty body.
 *   401  X-Hub-Signature-256 wrong, verified over the exact bytes received. Nothing below runs
 *        for an unsigned request: no UTF-8 decode, no JSON parse, no queue.
 *        Each answer so far refuses a request nobody vouches for: it is sent after a hold of 1 to
 *        3 s (RefusalHold: what keeps a flood from queueing in front of every new connection),
 *        and the connection is closed after it.
 *   400  not UTF-8: a lenient decode would hand on a different text than the one signed.
 *   400  X-GitHub-Event missing, malformed JSON, a payload without the fields duet reads.
 *   200  ping -> {"pong": true}; 202 ignored -> {"ignored": reason};
 *   202  trigger -> {"deploy": id} (+ "duplicate": true for a delivery the queue already has).
 *   503  the trigger could not be saved whole (a full disk), or duet serve is shutting down ->
 *        {"error", "hint"}: nothing was queued, and GitHub's delivery view offers the redelivery.
 *   500  the queue could not record the trigger for another reason -> {"error": message}.
 */

export type DeliveryOutcome =
  'accepted' | 'duplicate' | 'ignored' | 'pong' | 'unauthorized' | 'bad_request' | 'unsupported_media_type' | 'too_large' | 'busy' | 'error';

export interface WebhookOptions {
  config: Config;
  secret: string;
  queue: Pick<TriggerQueue, 'submit'>;
  logger: Logger;
  onDelivery?: (outcome: DeliveryOutcome) => void;
  /** Shared by every request of this router; tests pass a small one. */
  budget?: BodyBudget;
  /** How long a body may take to arrive (BODY_DEADLINE_MS by default). */
  bodyDeadlineMs?: number;
  /** The mean hold of a refusal (REFUSAL_HOLD_MS by default); tests of the answers pass 0. */
  refusalHoldMs?: number;
}

/** GitHub caps payloads at 25 MB; duet takes 25 MiB, a little above that. */
export const WEBHOOK_BODY_LIMIT = '25mb';

/** A delivery id goes into records and logs; GitHub's are GUIDs. */
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const EVENT_NAME = /^[a-z0-9_]{1,64}$/;

interface Delivery {
  started: number;
  /** Header values as received, shortened: the log line names them even for rejected requests. */
  event: string | undefined;
  delivery: string | undefined;
}

export function webhookRouter(options: WebhookOptions): express.Router {
  const { config, queue, logger, onDelivery } = options;
  // A receiver that accepts anything must not start.
  if (!options.secret) throw new Error('the webhook secret is empty');
  const { secret } = options;
  // The authority on GitHub's signature format. It takes the whole body as a string, so it runs
  // only on a body the streaming HMAC of readSignedBody already matched: a forged one is never
  // decoded, and the memory a flood could claim stays within the budget.
  const webhooks = new Webhooks({ secret });
  const budget = options.budget ?? new BodyBudget(UNVERIFIED_LIMITS, giveMemoryBack);
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const rejections = new RejectionLog(logger);
  const holds = new RefusalHold(options.refusalHoldMs);

  function reply(res: Response, status: number, body: Record<string, unknown>, outcome: DeliveryOutcome, fields: Record<string, unknown> = {}): void {
    const delivery = res.locals.delivery as Delivery;
    // Not res.json(): its send() hashes every answer for an ETag, which no webhook sender reads
    // (2.6% of duet serve's CPU at its maximum intake, in a CPU profile). An error names no path
    // of this machine (the log line below has the error whole).
    res
      .status(status)
      .type('application/json')
      .end(JSON.stringify(status >= 400 ? errorBody(body, config.stateDir) : body));
    const ms = Math.round((performance.now() - delivery.started) * 10) / 10;
    const line = { event: delivery.event, delivery: delivery.delivery, outcome, status, ms, ...fields };
    if (outcome === 'error') logger.error(line, 'webhook delivery failed');
    else if (status >= 400) rejections.warn(line, 'webhook delivery rejected');
    else logger.info(line, 'webhook delivery');
    try {
      onDelivery?.(outcome);
    } catch (error) {
      logger.warn({ err: error }, 'webhook onDelivery callback threw');
    }
  }

  function begin(req: Request, res: Response, next: NextFunction): void {
    res.locals.delivery = {
      started: performance.now(),
      event: headerForLog(req.get('x-github-event')),
      delivery: headerForLog(req.get('x-github-delivery')),
    } satisfies Delivery;
    next();
  }

  function requireJson(req: Request, res: Response, next: NextFunction): void {
    const type = (req.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      return refuseAndClose(res, 415, { error: "set the webhook's content type to application/json" }, 'unsupported_media_type', {
        contentType: headerForLog(req.get('content-type')),
      });
    }
    const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity') {
      return refuseAndClose(res, 415, { error: 'compressed bodies are not accepted (Content-Encoding)' }, 'unsupported_media_type');
    }
    next();
  }

  function requireSignature(req: Request, res: Response, next: NextFunction): void {
    if (req.get('x-hub-signature-256')) return next();
    refuseAndClose(res, 401, { error: 'missing X-Hub-Signature-256: set the same secret on the webhook and in duet' }, 'unauthorized');
  }

  /**
   * A refusal of a request nobody vouches for, held (RefusalHold), then sent on a connection that
   * is closed right after it: the rest of an unwanted body is never read (Node would otherwise
   * read and discard it to reuse the socket), and a sender of a forged body must connect again.
   */
  function refuseAndClose(res: Response, status: number, body: Record<string, unknown>, outcome: DeliveryOutcome, fields: Record<string, unknown> = {}): void {
    holds.hold(res, () => {
      res.set('Connection', 'close');
      res.once('finish', () => res.socket?.destroy());
      reply(res, status, body, outcome, fields);
    });
  }

  function refused(res: Response, refusal: BodyRefusal): void {
    switch (refusal.reason) {
      case 'too_large':
        return refuseAndClose(res, 413, { error: `the body is larger than ${WEBHOOK_BODY_LIMIT}, GitHub's own cap` }, 'too_large');
      case 'busy':
        res.set('Retry-After', String(BUSY_RETRY_AFTER_S));
        return refuseAndClose(res, 503, { error: 'too many webhook bodies are being received at once; redeliver in a moment' }, 'busy');
      case 'too_slow':
        return refuseAndClose(res, 408, { error: 'the body took too long to arrive' }, 'bad_request');
      case 'aborted':
        return refuseAndClose(res, 400, { error: 'the client stopped sending the body' }, 'bad_request');
    }
  }

  async function receive(req: Request, res: Response): Promise<void> {
    const signature = req.get('x-hub-signature-256')!;
    const read = await readSignedBody(req, { secret, signature, budget, deadlineMs: options.bodyDeadlineMs });
    if (!read.ok) return refused(res, read.refusal);
    if (read.length === 0) {
      return refuseAndClose(res, 400, { error: 'empty body' }, 'bad_request');
    }
    const raw = read.body;
    if (!raw) {
      return refuseAndClose(res, 401, { error: "X-Hub-Signature-256 does not match the body: the webhook secret differs from duet's" }, 'unauthorized');
    }
    let text: string;
    try {
      // Decoded strictly: a lenient decode would replace bad bytes and hand on a different text.
      text = utf8.decode(raw);
    } catch {
      return reply(res, 400, { error: 'the body is not valid UTF-8' }, 'bad_request');
    }
    if (!(await webhooks.verify(text, signature))) {
      return reply(res, 401, { error: "X-Hub-Signature-256 does not match the body: the webhook secret differs from duet's" }, 'unauthorized');
    }

    // Headers are not covered by the signature: check their shape before they are used or stored.
    const eventName = req.get('x-github-event');
    if (!eventName || !EVENT_NAME.test(eventName)) {
      return reply(res, 400, { error: eventName ? 'X-GitHub-Event is not an event name' : 'missing X-GitHub-Event' }, 'bad_request');
    }
    const deliveryHeader = req.get('x-github-delivery');
    if (deliveryHeader !== undefined && !DELIVERY_ID.test(deliveryHeader)) {
      return reply(res, 400, { error: 'X-GitHub-Delivery is not a delivery id' }, 'bad_request');
    }
    // GitHub always sends one; without it (a hand-made request) the trigger simply is not deduplicated.
    const deliveryId = deliveryHeader ?? null;

    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch (error) {
      return reply(res, 400, { error: `the body is not valid JSON: ${(error as Error).message}` }, 'bad_request');
    }

    let decision: EventDecision;
    try {
      decision = decideEvent(config, eventName, payload);
    } catch (error) {
      if (error instanceof WebhookPayloadError) return reply(res, 400, { error: error.message }, 'bad_request');
      throw error;
    }

    if ('pong' in decision) return reply(res, 200, { pong: true }, 'pong');
    if ('ignored' in decision) return reply(res, 202, { ignored: decision.ignored }, 'ignored', { reason: decision.ignored });

    const { trigger } = decision;
    const where = { app: trigger.app, ref: trigger.ref, sha: trigger.sha };
    try {
      const result = await queue.submit({ ...trigger, deliveryId, bodyDigest: createHash('sha256').update(raw).digest('hex') });
      if (result.created) return reply(res, 202, { deploy: result.id }, 'accepted', { ...where, deploy: result.id });
      return reply(res, 202, { deploy: result.id, duplicate: true }, 'duplicate', { ...where, deploy: result.id, reason: result.reason });
    } catch (error) {
      if (error instanceof UnavailableError) {
        return reply(res, 503, { error: `could not queue the deploy of ${trigger.app}: ${error.message}`, hint: error.hint }, 'error', {
          ...where,
          err: error,
        });
      }
      const message = error instanceof Error ? error.message : String(error);
      return reply(res, 500, { error: `could not queue the deploy of ${trigger.app}: ${message}` }, 'error', { ...where, err: error });
    }
  }

  /** Anything receive did not expect becomes JSON, never HTML. */
  function failed(error: unknown, _req: Request, res: Response, next: NextFunction): void {
    if (res.headersSent) return next(error);
    const message = error instanceof Error ? error.message : String(error);
    reply(res, 500, { error: `webhook failed: ${message}` }, 'error', { err: error });
  }

  const router = express.Router();
  router.post(
    '/webhook',
    begin,
    requireJson,
    requireSignature,
    // The raw bytes, read here and nowhere else: the signature covers the exact body.
    receive,
    failed,
  );
  return router;
}

/**
 * After a burst of large bodies the buffers are garbage, but an idle process allocates nothing
 * and V8 would not collect them for a long time; the unit runs node with --expose-gc.
 */
function giveMemoryBack(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  // A moment later: the sockets of the refused requests are still closing when the budget drains.
  if (gc) setTimeout(gc, 500).unref();
}

function headerForLog(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.slice(0, 100);
}
