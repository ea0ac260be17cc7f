import type { Webhook } from 'standardwebhooks';
import { notifyUrlOf, SIGNING_SECRET_HINT, webhookSigner, type NotifyTarget } from '../config/notify.js';
import { DuetError } from '../errors.js';
import { readOwnFile } from '../instance/app-env.js';
import { renderBody, type NotifyEvent } from './messages.js';

/** One request per call; when to retry is the notifier's business. */

/** A receiver that holds the request longer than this is down for this attempt. */
const REQUEST_TIMEOUT_MS = 10_000;

/** delivered; dropped (the receiver refused it for good); or to retry, with the wait it asked for (ms). */
type SendOutcome = { delivered: true } | { dropped: string } | { retry: string; waitMs: number | undefined };

export interface TargetSecrets {
  url: string;
  webhook: Webhook | undefined;
}

/** The URL (and for format webhook the signing key) from their files, checked like env_files: duet's, mode 0600. */
export async function readTargetSecrets(target: NotifyTarget, index: number): Promise<TargetSecrets> {
  const label = `notify[${index}]`;
  const read = async (path: string, setting: string): Promise<string> => {
    const bytes = await readOwnFile(
      path,
      `${label}.${setting}`,
      'notify',
      (error) =>
        new DuetError(`${label}.${setting}: ${path} cannot be read (${error.code ?? error.message})`, {
          step: 'notify',
          hint: `write it (one line), owned by duet's user, mode 0600`,
          cause: error,
        }),
    );
    return bytes.toString('utf8').trim();
  };
  const url = notifyUrlOf(await read(target.urlFile, 'url_file'));
  if (url === undefined) {
    throw new DuetError(`${label}.url_file: ${target.urlFile} does not hold an http(s) URL`, { step: 'notify', hint: 'write the URL alone on one line' });
  }
  if (target.secretFile === undefined) return { url, webhook: undefined };
  const secret = await read(target.secretFile, 'secret_file');
  try {
    return { url, webhook: webhookSigner(secret) };
  } catch (error) {
    throw new DuetError(`${label}.secret_file: ${target.secretFile} does not hold a Standard Webhooks secret (${(error as Error).message})`, {
      step: 'notify',
      hint: SIGNING_SECRET_HINT,
    });
  }
}

export async function sendNotification(target: NotifyTarget, secrets: TargetSecrets, id: string, event: NotifyEvent): Promise<SendOutcome> {
  const { body, contentType } = renderBody(target.format, event);
  const headers: Record<string, string> = { 'content-type': contentType, 'user-agent': 'duet' };
  if (secrets.webhook) {
    // The same id on every attempt: the receiver's key for recognising a delivery it already has.
    const now = new Date();
    headers['webhook-id'] = id;
    headers['webhook-timestamp'] = String(Math.floor(now.getTime() / 1000));
    headers['webhook-signature'] = secrets.webhook.sign(id, now, body);
  }
  let response: Response;
  try {
    response = await fetch(secrets.url, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { retry: cause ?? (error as Error).message, waitMs: undefined };
  }
  // The answer's body is not needed; reading it frees the connection.
  await response.arrayBuffer().catch(() => undefined);
  if (response.ok) return { delivered: true };
  const why = `HTTP ${response.status}`;
  if (response.status === 429 || response.status === 408 || response.status >= 500) {
    return { retry: why, waitMs: retryAfterMs(response.headers.get('retry-after')) };
  }
  // 400, 401, 403, 404, 410 ...: the same request will be refused the same way.
  return { dropped: why };
}

/** Retry-After: seconds, or an HTTP date. */
function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (value.trim() !== '' && Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}
