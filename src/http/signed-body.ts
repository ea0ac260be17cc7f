import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

/**
 * Reading a webhook body before anyone knows who sent it. Anybody can POST to /webhook, so what an
 * unverified body may cost is bounded: each body by GitHub's 25 MB cap, all of them together by
 * one budget shared by every request (`BodyBudget`: bytes held, bodies read at once, bytes hashed
 * per turn of the event loop), and each by a deadline, so that a client dribbling bytes cannot
 * hold its share for long. The HMAC, and the SHA-256 digest the queue deduplicates by, are
 * computed as the bytes arrive, in the one pass that reads them: the verdict is ready the moment
 * the last chunk is in, and the buffer they are gathered in is the body handed on.
 */

/** GitHub caps payloads at 25 MB. */
export const WEBHOOK_BODY_LIMIT_BYTES = 25 * 1024 * 1024;
/** GitHub gives up on a delivery after 10 s; a body slower than this is not GitHub's. */
const BODY_DEADLINE_MS = 20_000;
/** What a 503 for a full budget tells the client: long enough for the bodies in flight to end. */
export const BUSY_RETRY_AFTER_S = 5;

interface BudgetLimits {
  /** Bytes held by all unverified bodies together. */
  bytes: number;
  /** Bodies being read at once: past it a request is refused before a byte of its body is read. */
  bodies: number;
  /**
   * Bytes hashed per turn of the event loop; past it the bodies wait for the next turn. libuv
   * reads up to 2 MB from a socket in one go, and it accepts one new connection per turn: a
   * turn spent hashing is a turn every waiting connection (/healthz's, GitHub's) waits longer.
   */
  bytesPerTurn: number;
}

/**
 * Room for two bodies of the largest size and a small one beside them; GitHub's deliveries are a
 * few kB, read within the turn their bytes arrive in, so more at once are a flood's. 64 kB a turn
 * still reads a body at hundreds of MB/s while nothing else waits.
 */
export const UNVERIFIED_LIMITS: BudgetLimits = { bytes: 64 * 1024 * 1024, bodies: 3, bytesPerTurn: 64 * 1024 };

/** One body's share of the budget, given back once the verdict is in. */
interface BodyCharge {
  /** The body has reached `total` bytes: charge what the declared length did not cover, if there is room. */
  cover(total: number): boolean;
  /**
   * Count `bytes` as hashed in this turn; false when the turn's share is spent: pause until
   * `next` is called. A body's first chunk never waits.
   */
  hashed(bytes: number, next: () => void): boolean;
  release(): void;
}

export class BodyBudget {
  private used = 0;
  private bodies = 0;
  private peak = 0;
  private turnBytes = 0;
  private turnEnds = false;
  private waiting: Array<() => void> = [];

  constructor(
    readonly limits: BudgetLimits,
    /** Called when the budget drains after it held more than `idleAfterBytes`: time to give memory back. */
    private readonly onDrained: () => void = () => {},
    private readonly idleAfterBytes = 8 * 1024 * 1024,
  ) {}

  get inUse(): { bytes: number; bodies: number } {
    return { bytes: this.used, bodies: this.bodies };
  }

  /** A new body with `declared` bytes charged up front, or undefined when there is no room. */
  admit(declared: number): BodyCharge | undefined {
    if (this.bodies >= this.limits.bodies || !this.take(declared)) return undefined;
    this.bodies++;
    let charged = declared;
    let released = false;
    let first = true;
    return {
      cover: (total) => {
        if (total <= charged) return true;
        if (!this.take(total - charged)) return false;
        charged = total;
        return true;
      },
      hashed: (bytes, next) => {
        // A body's first chunk never waits: a delivery of a few kB is then read, and its slot
        // freed, within the turn it arrived in, however many others share that turn.
        const mayWait = !first;
        first = false;
        return this.hashed(bytes, mayWait ? next : undefined);
      },
      release: () => {
        if (released) return;
        released = true;
        this.bodies--;
        this.give(charged);
      },
    };
  }

  private take(bytes: number): boolean {
    if (this.used + bytes > this.limits.bytes) return false;
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
    return true;
  }

  private give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
    if (this.used === 0 && this.peak > this.idleAfterBytes) {
      this.peak = 0;
      this.onDrained();
    }
  }

  /** Without `next` the bytes count, but their body does not wait. */
  private hashed(bytes: number, next: (() => void) | undefined): boolean {
    if (!this.turnEnds) {
      this.turnEnds = true;
      setImmediate(this.endTurn);
    }
    this.turnBytes += bytes;
    if (this.turnBytes <= this.limits.bytesPerTurn || !next) return true;
    this.waiting.push(next);
    return false;
  }

  private readonly endTurn = (): void => {
    this.turnEnds = false;
    this.turnBytes = 0;
    const waiting = this.waiting;
    this.waiting = [];
    for (const next of waiting) next();
  };
}

export type BodyRefusal =
  { status: 413; reason: 'too_large' } | { status: 503; reason: 'busy' } | { status: 408; reason: 'too_slow' } | { status: 400; reason: 'aborted' };

export type SignedBody =
  /** `body` and its SHA-256 `digest` (hex) only when the signature matches it. */
  | { ok: true; verified: true; length: number; body: Buffer; digest: string }
  | { ok: true; verified: false; length: number }
  | { ok: false; refusal: BodyRefusal };

interface ReadOptions {
  secret: string;
  /** The X-Hub-Signature-256 header: "sha256=" and 64 hex digits. */
  signature: string;
  budget: BodyBudget;
  limitBytes?: number;
  deadlineMs?: number;
}

/**
 * Read the body while computing its HMAC. A declared Content-Length is charged to the budget in
 * full before a byte is read (so a refusal costs nothing); a chunked body is charged as the
 * buffer it is gathered in grows. The charge is given back once the verdict is in, whatever it is.
 */
export function readSignedBody(req: Request, options: ReadOptions): Promise<SignedBody> {
  const limit = options.limitBytes ?? WEBHOOK_BODY_LIMIT_BYTES;
  const declaredHeader = req.get('content-length');
  const declared = declaredHeader === undefined ? undefined : Number(declaredHeader);
  if (declared !== undefined && declared > limit) return Promise.resolve(refuse({ status: 413, reason: 'too_large' }));
  const charge = options.budget.admit(declared ?? 0);
  if (!charge) return Promise.resolve(refuse({ status: 503, reason: 'busy' }));

  return new Promise<SignedBody>((resolve) => {
    const hmac = createHmac('sha256', options.secret);
    const digest = createHash('sha256');
    // Gathered into one buffer as it arrives, not kept as chunks: after a flood of large bodies
    // duet serve's memory falls back this way, and stayed high with the chunks (bench/README.md).
    let body = Buffer.allocUnsafe(declared ?? FIRST_CHUNKED_BYTES);
    let received = 0;
    let settled = false;
    const finish = (result: SignedBody): void => {
      settled = true;
      clearTimeout(deadline);
      req.off('data', onData).off('end', onEnd).off('aborted', onAborted).off('error', onAborted);
      body = EMPTY;
      charge.release();
      if (!result.ok) req.pause();
      resolve(result);
    };
    const resume = (): void => {
      if (!settled) req.resume();
    };
    const onData = (chunk: Buffer): void => {
      const end = received + chunk.length;
      if (end > limit) return finish(refuse({ status: 413, reason: 'too_large' }));
      if (end > body.length) {
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(end, 2 * body.length)));
        body.copy(grown, 0, 0, received);
        body = grown;
      }
      if (!charge.cover(body.length)) return finish(refuse({ status: 503, reason: 'busy' }));
      hmac.update(chunk);
      digest.update(chunk);
      chunk.copy(body, received);
      received = end;
      if (!charge.hashed(chunk.length, resume)) req.pause();
    };
    const onEnd = (): void => {
      const length = received;
      if (!signatureMatches(options.signature, hmac.digest())) return finish({ ok: true, verified: false, length });
      finish({ ok: true, verified: true, length, body: body.subarray(0, length), digest: digest.digest('hex') });
    };
    const onAborted = (): void => finish(refuse({ status: 400, reason: 'aborted' }));
    const deadline = setTimeout(() => finish(refuse({ status: 408, reason: 'too_slow' })), options.deadlineMs ?? BODY_DEADLINE_MS);
    req.on('data', onData).on('end', onEnd).on('aborted', onAborted).on('error', onAborted);
  });
}

const EMPTY = Buffer.alloc(0);
/** Where a body without Content-Length starts; it doubles as the body grows. */
const FIRST_CHUNKED_BYTES = 64 * 1024;

function refuse(refusal: BodyRefusal): SignedBody {
  return { ok: false, refusal };
}

/** GitHub's format exactly, compared in constant time (the digest has a fixed length). */
function signatureMatches(header: string, digest: Buffer): boolean {
  const match = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!match) return false;
  return timingSafeEqual(Buffer.from(match[1]!, 'hex'), digest);
}
