/** The longest backoff between two tries of one delivery. */
const MAX_BACKOFF_MS = 5 * 60_000;
/** A receiver's Retry-After (or a rate limit's reset) is honoured up to this. */
const MAX_WAIT_MS = 60 * 60_000;

/** Where a delivery lane keeps the wait it is in, so that closing (or new work) can end it early. */
interface Waiting {
  wake: (() => void) | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The wait before try `attempt + 1` of a delivery (the GitHub reporter's, the notifier's): the
 * backoff doubles from baseMs up to MAX_BACKOFF_MS, a longer wait the receiver asked for is
 * honoured up to MAX_WAIT_MS. Resolves at once when `closed`.
 */
export function retryWait(lane: Waiting, o: { attempt: number; baseMs: number; askedMs: number | undefined; closed: boolean }): Promise<void> {
  const backoff = Math.min(o.baseMs * 2 ** (o.attempt - 1), MAX_BACKOFF_MS);
  const delay = Math.min(Math.max(backoff, o.askedMs ?? 0), MAX_WAIT_MS);
  return new Promise((resolve) => {
    if (o.closed) return resolve();
    lane.wake = () => {
      lane.wake = undefined;
      lane.timer = undefined;
      resolve();
    };
    // A pending retry must not be what keeps a process alive: the outbox keeps what it retries.
    lane.timer = setTimeout(lane.wake, delay);
    lane.timer.unref();
  });
}
