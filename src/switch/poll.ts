import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  timeoutMs: number;
  /** First wait; doubled after every miss up to maxDelayMs. Small, because nginx is usually fast. */
  firstDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * Call `check` until it returns something other than undefined, or the time is up (then
 * undefined). Waiting on a condition instead of a fixed sleep is what makes the switch both fast
 * when nginx is quick and correct when it is slow.
 */
export async function pollUntil<T>(check: (remainingMs: number) => Promise<T | undefined>, options: PollOptions): Promise<T | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  let delay = options.firstDelayMs ?? 5;
  for (;;) {
    const result = await check(Math.max(1, deadline - Date.now()));
    if (result !== undefined) return result;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return undefined;
    await sleep(Math.min(delay, remaining));
    delay = Math.min(delay * 2, options.maxDelayMs ?? 200);
  }
}
