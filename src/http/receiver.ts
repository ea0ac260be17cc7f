import { performance } from 'node:perf_hooks';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { httpStatusOf } from '../error-kinds.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { checkDelivery, checkHeaders, enqueue, forLog, wakeChecks, type DeliveryOutcome, type WebhookAnswer } from './delivery.js';
import { errorBody } from './error-paths.js';
import { RefusalHold } from './refusal-hold.js';
import { RejectionLog } from './rejection-log.js';
import { BodyBudget, readSignedBody, UNVERIFIED_LIMITS } from './signed-body.js';

/**
 * POST /webhook: GitHub deliveries in, triggers out. What to answer is decided in delivery.ts;
 * this adapter reads the body, sends the answer and logs it.
 */

interface WebhookOptions {
  config: Config;
  secret: string;
  queue: Pick<TriggerQueue, 'submit' | 'wakeChecks'>;
  logger: Logger;
  onDelivery?: (outcome: DeliveryOutcome) => void;
  /** Shared by every request of this router; tests pass a small one. */
  budget?: BodyBudget;
  /** How long a body may take to arrive (BODY_DEADLINE_MS by default). */
  bodyDeadlineMs?: number;
  /** The mean hold of a refusal (REFUSAL_HOLD_MS by default); tests of the answers pass 0. */
  refusalHoldMs?: number;
}

export function webhookRouter(options: WebhookOptions): express.Router {
  const { config, secret, queue, logger, onDelivery } = options;
  // A receiver that accepts anything must not start.
  if (!secret) throw new Error('the webhook secret is empty');
  const budget = options.budget ?? new BodyBudget(UNVERIFIED_LIMITS, giveMemoryBack);
  const rejections = new RejectionLog(logger);
  const holds = new RefusalHold(options.refusalHoldMs);

  function send(req: Request, res: Response, started: number, answer: WebhookAnswer): void {
    const { status, body, outcome, fields } = answer;
    if (answer.retryAfterS !== undefined) res.set('Retry-After', String(answer.retryAfterS));
    // Not res.json(): its send() hashes every answer for an ETag, which no webhook sender reads.
    // An error names no path of this machine (the log line below has the error whole).
    res
      .status(status)
      .type('application/json')
      .end(JSON.stringify(status >= 400 ? errorBody(body, config.stateDir) : body));
    const ms = Math.round((performance.now() - started) * 10) / 10;
    const line = { event: forLog(req.headers['x-github-event']), delivery: forLog(req.headers['x-github-delivery']), outcome, status, ms, ...fields };
    if (outcome === 'error') logger.error(line, 'webhook delivery failed');
    else if (status >= 400) rejections.warn(line, 'webhook delivery rejected');
    else logger.info(line, 'webhook delivery');
    try {
      onDelivery?.(outcome);
    } catch (error) {
      logger.warn({ err: error }, 'webhook onDelivery callback threw');
    }
  }

  /**
   * A refusal of a request nobody vouches for is held (RefusalHold: what keeps a flood from
   * queueing in front of every new connection), then sent on a connection that is closed right
   * after it: the rest of an unwanted body is never read (Node would otherwise read and discard it
   * to reuse the socket), and a sender of a forged body must connect again.
   */
  function reply(req: Request, res: Response, started: number, answer: WebhookAnswer): void {
    if (!answer.untrusted) return send(req, res, started, answer);
    holds.hold(res, () => {
      res.set('Connection', 'close');
      res.once('finish', () => res.socket?.destroy());
      send(req, res, started, answer);
    });
  }

  async function receive(req: Request, res: Response): Promise<void> {
    const started = performance.now();
    const refusal = checkHeaders(req.headers);
    if (refusal) return reply(req, res, started, refusal);
    // The raw bytes, read here and nowhere else: the signature covers the exact body.
    const signature = req.get('x-hub-signature-256')!;
    const read = await readSignedBody(req, { secret, signature, budget, deadlineMs: options.bodyDeadlineMs });
    const check = checkDelivery(config, req.headers, read);
    if ('wake' in check) return reply(req, res, started, wakeChecks(queue, check.wake));
    reply(req, res, started, 'trigger' in check ? await enqueue(queue, check.trigger) : check);
  }

  /** Anything receive did not expect becomes JSON, never HTML. */
  function failed(error: unknown, req: Request, res: Response, next: NextFunction): void {
    if (res.headersSent) return next(error);
    const message = error instanceof Error ? error.message : String(error);
    send(req, res, performance.now(), { status: httpStatusOf(error), body: { error: `webhook failed: ${message}` }, outcome: 'error', fields: { err: error } });
  }

  return express.Router().post('/webhook', (req: Request, res: Response, next: NextFunction) => void receive(req, res).catch(next), failed);
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
