import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config/load.js';
import { httpStatusOf } from '../error-kinds.js';
import { DuetError } from '../errors.js';
import type { TriggerQueue, TriggerRequest } from '../pipeline/trigger.js';
import { decideEvent, WebhookPayloadError, type EventDecision } from './events.js';
import { BUSY_RETRY_AFTER_S, WEBHOOK_BODY_LIMIT_BYTES, type BodyRefusal, type SignedBody } from './signed-body.js';

/**
 * What duet answers a GitHub delivery, decided without I/O (the shape of octokit/webhooks.js's
 * verify-and-receive): `checkHeaders` before the body is read, `checkDelivery` once it is, each
 * an answer with its status or, for a delivery that deploys, the trigger to queue. The express
 * router (receiver.ts) only reads the body and sends what these decide.
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
 *        Each answer so far refuses a request nobody vouches for (`untrusted`): the router holds
 *        it 1 to 3 s and closes the connection after it.
 *   400  not UTF-8: a lenient decode would hand on a different text than the one signed.
 *   400  X-GitHub-Event missing, malformed JSON, a payload without the fields duet reads.
 *   200  ping -> {"pong": true}; 202 ignored -> {"ignored": reason};
 *   202  CI news of a commit (check_run, check_suite, workflow_run, status) -> {"checks": sha,
 *        "waiting": n}: the n deploys waiting for that commit's CI ask GitHub at once.
 *   202  trigger -> {"deploy": id} (+ "duplicate": true for a delivery the queue already has).
 *   503  the trigger could not be saved whole (a full disk), or duet serve is shutting down ->
 *        {"error", "hint"}: nothing was queued, and GitHub's delivery view offers the redelivery.
 *   4xx/500  the queue refused the trigger for another reason: the status of its kind
 *        (error-kinds.ts: an app it does not know 404, a fault of duet 500) -> {"error", "hint"?}.
 */

export type DeliveryOutcome =
  'accepted' | 'duplicate' | 'ignored' | 'pong' | 'unauthorized' | 'bad_request' | 'unsupported_media_type' | 'too_large' | 'busy' | 'error';

export interface WebhookAnswer {
  status: number;
  body: Record<string, unknown>;
  outcome: DeliveryOutcome;
  /** For the log line only. */
  fields?: Record<string, unknown>;
  /** A refusal of a request nobody vouches for: held, then sent on a connection closed after it. */
  untrusted?: boolean;
  retryAfterS?: number;
}

type DeliveryCheck = WebhookAnswer | { trigger: TriggerRequest } | { wake: { repo: string; sha: string } };

/** GitHub caps payloads at 25 MB; duet takes 25 MiB, a little above that. */
const BODY_LIMIT = `${WEBHOOK_BODY_LIMIT_BYTES / 1024 / 1024}mb`;
/** A delivery id goes into records and logs; GitHub's are GUIDs. */
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const EVENT_NAME = /^[a-z0-9_]{1,64}$/;
const WRONG_SIGNATURE = "X-Hub-Signature-256 does not match the body: the webhook secret differs from duet's";

/** The checks the headers alone settle, so that a request refused by them costs no read. */
export function checkHeaders(headers: IncomingHttpHeaders): WebhookAnswer | undefined {
  const contentType = headers['content-type'];
  if ((contentType ?? '').split(';')[0]!.trim().toLowerCase() !== 'application/json') {
    return untrusted(415, "set the webhook's content type to application/json", 'unsupported_media_type', { contentType: forLog(contentType) });
  }
  if ((headers['content-encoding'] ?? 'identity').trim().toLowerCase() !== 'identity') {
    return untrusted(415, 'compressed bodies are not accepted (Content-Encoding)', 'unsupported_media_type');
  }
  if (!headers['x-hub-signature-256']) return untrusted(401, 'missing X-Hub-Signature-256: set the same secret on the webhook and in duet', 'unauthorized');
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The delivery, its body read (and its signature checked while reading): an answer, or the trigger to queue. */
export function checkDelivery(config: Config, headers: IncomingHttpHeaders, read: SignedBody): DeliveryCheck {
  if (!read.ok) return refusedBody(read.refusal);
  if (read.length === 0) return untrusted(400, 'empty body', 'bad_request');
  if (!read.verified) return untrusted(401, WRONG_SIGNATURE, 'unauthorized');
  let text: string;
  try {
    // Decoded strictly: a lenient decode would replace bad bytes and hand on a different text.
    text = utf8.decode(read.body);
  } catch {
    return badRequest('the body is not valid UTF-8');
  }
  // Headers are not covered by the signature: check their shape before they are used or stored.
  const eventName = one(headers['x-github-event']);
  if (!eventName || !EVENT_NAME.test(eventName)) return badRequest(eventName ? 'X-GitHub-Event is not an event name' : 'missing X-GitHub-Event');
  const deliveryHeader = one(headers['x-github-delivery']);
  if (deliveryHeader !== undefined && !DELIVERY_ID.test(deliveryHeader)) return badRequest('X-GitHub-Delivery is not a delivery id');

  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (error) {
    return badRequest(`the body is not valid JSON: ${(error as Error).message}`);
  }
  let decision: EventDecision;
  try {
    decision = decideEvent(config, eventName, payload);
  } catch (error) {
    if (error instanceof WebhookPayloadError) return badRequest(error.message);
    throw error;
  }
  if ('pong' in decision) return { status: 200, body: { pong: true }, outcome: 'pong' };
  if ('wake' in decision) return decision;
  if ('ignored' in decision) return { status: 202, body: { ignored: decision.ignored }, outcome: 'ignored', fields: { reason: decision.ignored } };
  // GitHub always sends a delivery id; without it (a hand-made request) the trigger simply is not deduplicated.
  return { trigger: { ...decision.trigger, deliveryId: deliveryHeader ?? null, bodyDigest: read.digest } };
}

/** CI news (check_run, check_suite, workflow_run, status): the deploys waiting for that commit's CI ask GitHub now. */
export function wakeChecks(queue: Pick<TriggerQueue, 'wakeChecks'>, wake: { repo: string; sha: string }): WebhookAnswer {
  const woken = queue.wakeChecks?.(wake.repo, wake.sha) ?? 0;
  return { status: 202, body: { checks: wake.sha, waiting: woken }, outcome: 'ignored', fields: { ...wake, waiting: woken } };
}

/** The answer once the queue has taken the trigger, or failed to. */
export async function enqueue(queue: Pick<TriggerQueue, 'submit'>, trigger: TriggerRequest): Promise<WebhookAnswer> {
  const where = { app: trigger.app, ref: trigger.ref, sha: trigger.sha };
  try {
    const result = await queue.submit(trigger);
    if (result.created) return { status: 202, body: { deploy: result.id }, outcome: 'accepted', fields: { ...where, deploy: result.id } };
    return { status: 202, body: { deploy: result.id, duplicate: true }, outcome: 'duplicate', fields: { ...where, deploy: result.id, reason: result.reason } };
  } catch (error) {
    const message = `could not queue the deploy of ${trigger.app}: ${error instanceof Error ? error.message : String(error)}`;
    const hint = error instanceof DuetError && error.hint ? { hint: error.hint } : {};
    return { status: httpStatusOf(error), body: { error: message, ...hint }, outcome: 'error', fields: { ...where, err: error } };
  }
}

function refusedBody(refusal: BodyRefusal): WebhookAnswer {
  switch (refusal.reason) {
    case 'too_large':
      return untrusted(refusal.status, `the body is larger than ${BODY_LIMIT}, GitHub's own cap`, 'too_large');
    case 'busy':
      return {
        ...untrusted(refusal.status, 'too many webhook bodies are being received at once; redeliver in a moment', 'busy'),
        retryAfterS: BUSY_RETRY_AFTER_S,
      };
    case 'too_slow':
      return untrusted(refusal.status, 'the body took too long to arrive', 'bad_request');
    case 'aborted':
      return untrusted(refusal.status, 'the client stopped sending the body', 'bad_request');
  }
}

function untrusted(status: number, error: string, outcome: DeliveryOutcome, fields?: Record<string, unknown>): WebhookAnswer {
  return { status, body: { error }, outcome, untrusted: true, ...(fields && { fields }) };
}

function badRequest(error: string): WebhookAnswer {
  return { status: 400, body: { error }, outcome: 'bad_request' };
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Header values as received, shortened: the log line names them even for rejected requests. */
export function forLog(value: string | string[] | undefined): string | undefined {
  return one(value)?.slice(0, 100);
}
