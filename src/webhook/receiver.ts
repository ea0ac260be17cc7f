import { performance } from 'node:perf_hooks';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Webhooks } from '@octokit/webhooks';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { decideEvent, WebhookPayloadError, type EventDecision } from './events.js';

/**
 * POST /webhook: GitHub deliveries in, triggers out.
 *
 * The order of checks, each answered with JSON GitHub shows in the delivery view:
 *   415  content type is not application/json: answered from the headers, before the body is
 *        read; nothing is processed, so it needs no signature (and it names the fix in GitHub).
 *   413  body over 25 MB (GitHub's own cap), from express.raw on this route only.
 *   400  empty body, or not UTF-8: no payload GitHub signs looks like that.
 *   401  X-Hub-Signature-256 missing or wrong, verified over the exact bytes received. Nothing
 *        below runs for an unsigned request: no JSON parse, no queue.
 *   400  X-GitHub-Event missing, malformed JSON, a payload without the fields duet reads.
 *   200  ping -> {"pong": true}; 202 ignored -> {"ignored": reason};
 *   202  trigger -> {"deploy": id} (+ "duplicate": true for a delivery the queue already has).
 *   500  the queue could not record the trigger -> {"error": message}.
 */

export type DeliveryOutcome =
  | 'accepted'
  | 'duplicate'
  | 'ignored'
  | 'pong'
  | 'unauthorized'
  | 'bad_request'
  | 'unsupported_media_type'
  | 'too_large'
  | 'error';

export interface WebhookOptions {
  config: Config;
  secret: string;
  queue: Pick<TriggerQueue, 'submit'>;
  logger: Logger;
  onDelivery?: (outcome: DeliveryOutcome) => void;
}

/** GitHub caps payloads at 25 MB; "25mb" is 25 MiB in express, a little above that. */
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
  // Throws on an empty secret: a receiver that accepts anything must not start.
  const webhooks = new Webhooks({ secret: options.secret });
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  function reply(
    res: Response,
    status: number,
    body: Record<string, unknown>,
    outcome: DeliveryOutcome,
    fields: Record<string, unknown> = {},
  ): void {
    const delivery = res.locals.delivery as Delivery;
    res.status(status).json(body);
    const ms = Math.round((performance.now() - delivery.started) * 10) / 10;
    const line = { event: delivery.event, delivery: delivery.delivery, outcome, status, ms, ...fields };
    if (outcome === 'error') logger.error(line, 'webhook delivery failed');
    else if (status >= 400) logger.warn(line, 'webhook delivery rejected');
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
    if (type === 'application/json') return next();
    reply(res, 415, { error: "set the webhook's content type to application/json" }, 'unsupported_media_type', {
      contentType: headerForLog(req.get('content-type')),
    });
  }

  async function receive(req: Request, res: Response): Promise<void> {
    const raw: unknown = req.body;
    if (!Buffer.isBuffer(raw) || raw.length === 0) {
      return reply(res, 400, { error: 'empty body' }, 'bad_request');
    }
    let text: string;
    try {
      // Decoded strictly: a lenient decode would replace bad bytes and sign a different text.
      text = utf8.decode(raw);
    } catch {
      return reply(res, 400, { error: 'the body is not valid UTF-8' }, 'bad_request');
    }

    const signature = req.get('x-hub-signature-256');
    if (!signature) {
      return reply(res, 401, { error: 'missing X-Hub-Signature-256: set the same secret on the webhook and in duet' }, 'unauthorized');
    }
    if (!(await webhooks.verify(text, signature))) {
      return reply(res, 401, { error: 'X-Hub-Signature-256 does not match the body: the webhook secret differs from duet\'s' }, 'unauthorized');
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
      const result = await queue.submit({ ...trigger, deliveryId });
      if (result.created) return reply(res, 202, { deploy: result.id }, 'accepted', { ...where, deploy: result.id });
      return reply(res, 202, { deploy: result.id, duplicate: true }, 'duplicate', { ...where, deploy: result.id, reason: result.reason });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return reply(res, 500, { error: `could not queue the deploy of ${trigger.app}: ${message}` }, 'error', { ...where, err: error });
    }
  }

  /** Errors of express.raw (and anything receive did not expect) become JSON, never HTML. */
  function failed(error: unknown, _req: Request, res: Response, next: NextFunction): void {
    if (res.headersSent) return next(error);
    const { status, type } = error as { status?: number; type?: string };
    if (type === 'entity.too.large') {
      return reply(res, 413, { error: `the body is larger than ${WEBHOOK_BODY_LIMIT}, GitHub's own cap` }, 'too_large');
    }
    if (type === 'encoding.unsupported') {
      return reply(res, 415, { error: 'compressed bodies are not accepted (Content-Encoding)' }, 'unsupported_media_type');
    }
    if (status !== undefined && status >= 400 && status < 500) {
      return reply(res, 400, { error: `could not read the body: ${(error as Error).message}` }, 'bad_request');
    }
    const message = error instanceof Error ? error.message : String(error);
    reply(res, 500, { error: `webhook failed: ${message}` }, 'error', { err: error });
  }

  const router = express.Router();
  router.post(
    '/webhook',
    begin,
    requireJson,
    // Raw bytes, on this route only: the signature covers the exact body, so nothing may parse first.
    // inflate off: GitHub does not compress, and the 25 MB cap should bound what is held in memory.
    express.raw({ type: () => true, limit: WEBHOOK_BODY_LIMIT, inflate: false }),
    receive,
    failed,
  );
  return router;
}

function headerForLog(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.slice(0, 100);
}
