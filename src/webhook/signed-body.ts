import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

/**
 * Reading a webhook body before anyone knows who sent it. Anybody can POST to /webhook, so what an
 * unverified body may cost is bounded: each body by GitHub's 25 MB cap, all of them together by
 * one budget shared by every request (`BodyBudget`), and each by a deadline, so that a client
 * dribbling bytes cannot hold its share for long. The HMAC is computed as the bytes arrive: the
 * verdict is ready the moment the last chunk is in, and no copy of the body is made to sign it.
 */

/** GitHub caps payloads at 25 MB. */
export const WEBHOOK_BODY_LIMIT_BYTES = 25 * 1024 * 1024;
/** Room for two bodies of the largest size at once; GitHub's usual deliveries are a few kB. */
export const UNVERIFIED_BUDGET_BYTES = 64 * 1024 * 1024;
/** GitHub gives up on a delivery after 10 s; a body slower than this is not GitHub's. */
export const BODY_DEADLINE_MS = 20_000;
/** What a 503 for a full budget tells the client: long enough for the bodies in flight to end. */
export const BUSY_RETRY_AFTER_S = 5;

export class BodyBudget {
  private used = 0;
  private peak = 0;
  constructor(
    readonly limitBytes: number,
    /** Called when the budget drains after it held more than `idleAfterBytes`: time to give memory back. */
    private readonly onDrained: () => void = () => {},
    private readonly idleAfterBytes = 8 * 1024 * 1024,
  ) {}

  get inUse(): number {
    return this.used;
  }

  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
    if (this.used === 0 && this.peak > this.idleAfterBytes) {
      this.peak = 0;
      this.onDrained();
    }
  }
}

export type BodyRefusal =
  { status: 413; reason: 'too_large' } | { status: 503; reason: 'busy' } | { status: 408; reason: 'too_slow' } | { status: 400; reason: 'aborted' };

export type SignedBody =
  /** `body` only when the signature matches it. */
  { ok: true; length: number; body: Buffer | undefined } | { ok: false; refusal: BodyRefusal };

export interface ReadOptions {
  secret: string;
  /** The X-Hub-Signature-256 header: "sha256=" and 64 hex digits. */
  signature: string;
  budget: BodyBudget;
  limitBytes?: number;
  deadlineMs?: number;
}

/**
 * Read the body while computing its HMAC. A declared Content-Length is charged to the budget in
 * full before a byte is read (so a refusal costs nothing); a chunked body is charged as it
 * arrives. The charge is given back once the verdict is in, whatever it is.
 */
export function readSignedBody(req: Request, options: ReadOptions): Promise<SignedBody> {
  const limit = options.limitBytes ?? WEBHOOK_BODY_LIMIT_BYTES;
  const { budget } = options;
  const declaredHeader = req.get('content-length');
  const declared = declaredHeader === undefined ? undefined : Number(declaredHeader);
  if (declared !== undefined && declared > limit) return Promise.resolve(refuse({ status: 413, reason: 'too_large' }));
  if (declared !== undefined && !budget.take(declared)) return Promise.resolve(refuse({ status: 503, reason: 'busy' }));
  let charged = declared ?? 0;

  return new Promise<SignedBody>((resolve) => {
    const hmac = createHmac('sha256', options.secret);
    let chunks: Buffer[] = [];
    let received = 0;
    const finish = (result: SignedBody): void => {
      clearTimeout(deadline);
      req.off('data', onData).off('end', onEnd).off('aborted', onAborted).off('error', onAborted);
      chunks = [];
      budget.give(charged);
      charged = 0;
      if (!result.ok) req.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limit) return finish(refuse({ status: 413, reason: 'too_large' }));
      if (received > charged) {
        const more = received - charged;
        if (!budget.take(more)) return finish(refuse({ status: 503, reason: 'busy' }));
        charged += more;
      }
      hmac.update(chunk);
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      // Joined only once it is known to be GitHub's: a forged body is never held twice.
      const verified = signatureMatches(options.signature, hmac.digest());
      finish({ ok: true, length: received, body: verified ? Buffer.concat(chunks, received) : undefined });
    };
    const onAborted = (): void => finish(refuse({ status: 400, reason: 'aborted' }));
    const deadline = setTimeout(() => finish(refuse({ status: 408, reason: 'too_slow' })), options.deadlineMs ?? BODY_DEADLINE_MS);
    req.on('data', onData).on('end', onEnd).on('aborted', onAborted).on('error', onAborted);
  });
}

function refuse(refusal: BodyRefusal): SignedBody {
  return { ok: false, refusal };
}

/** GitHub's format exactly, compared in constant time (the digest has a fixed length). */
function signatureMatches(header: string, digest: Buffer): boolean {
  const match = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!match) return false;
  return timingSafeEqual(Buffer.from(match[1]!, 'hex'), digest);
}
