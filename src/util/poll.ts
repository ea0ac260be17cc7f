import { setTimeout as sleep } from 'node:timers/promises';

interface PollOptions {
  timeoutMs: number;
  /** First wait between attempts; doubles up to maxIntervalMs, so fast things are seen fast. */
  initialIntervalMs?: number;
  maxIntervalMs?: number;
}

/**
 * Call `attempt` until it returns something other than undefined, backing off between tries.
 * Returns undefined when the time is up. Used instead of fixed sleeps everywhere.
 */
export async function pollUntil<T>(attempt: (remainingMs: number) => Promise<T | undefined>, options: PollOptions): Promise<T | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  let interval = options.initialIntervalMs ?? 10;
  const maxInterval = options.maxIntervalMs ?? 500;
  for (;;) {
    const value = await attempt(Math.max(1, deadline - Date.now()));
    if (value !== undefined) return value;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await sleep(Math.min(interval, left));
    interval = Math.min(interval * 2, maxInterval);
  }
}
