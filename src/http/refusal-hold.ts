import type { Response } from 'express';

/**
 * Refusals of webhook requests nobody vouches for (no or a wrong signature, a body too large or
 * with no room in the budget) are sent after a moment, not at once. libuv accepts one connection
 * per turn of the event loop, so a flood whose connections come back the moment they are answered
 * keeps a queue of them in front of every new connection, /healthz's and GitHub's included, for
 * seconds (bench/README.md). Held, the request is not read (its bytes stay in
 * the kernel and the sender's window closes), each of the flood's connections comes back once a
 * second or two at random moments, and the queue stays short. GitHub waits 10 s for an answer.
 */

/** The mean hold; each one is drawn between half and one and a half times it. */
const REFUSAL_HOLD_MS = 2000;
/** Refusals held at once; past it they are sent at once (each holds a socket and its buffers). */
const MAX_HELD_REFUSALS = 256;

export class RefusalHold {
  private held = 0;

  constructor(
    private readonly holdMs = REFUSAL_HOLD_MS,
    private readonly maxHeld = MAX_HELD_REFUSALS,
  ) {}

  /** Call `send` after the hold, unless the connection closes first. */
  hold(res: Response, send: () => void): void {
    if (this.holdMs <= 0 || this.held >= this.maxHeld) return send();
    this.held++;
    res.req.pause();
    const release = (): void => {
      clearTimeout(timer);
      res.off('close', release);
      this.held--;
    };
    const timer = setTimeout(
      () => {
        release();
        send();
      },
      this.holdMs * (0.5 + Math.random()),
    ).unref();
    res.once('close', release);
  }
}
