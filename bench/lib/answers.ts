import type { LoadKind, RequestRecord } from './closed-load.js';

/**
 * What a closed-loop load's records (closed-load.ts) say about a window of time: how many
 * requests failed and why, and when an answer of a given origin first came.
 */

/** A request failed when it got no answer (refused, reset, timed out) or a status not 2xx. */
export const failed = (r: RequestRecord): boolean => r.status < 200 || r.status > 299;

/**
 * No answer because the client's own connection to nginx was reset or closed under it: nginx
 * stays up when an app dies (it answers 502, or retries on the backup), so this is nginx closing
 * the connection, which its old workers do to idle keep-alive connections after a reload (see
 * section 1), never a `Connection: close` client's.
 */
export const connectionLost = (r: RequestRecord): boolean => r.status === 0 && (r.error === 'ECONNRESET' || r.error === 'EPIPE' || r.error === 'aborted');

export interface WindowCount {
  /** Requests that ended (answered or failed) within the window. */
  requests: number;
  failed: number;
  non2xx: number;
  /** No answer at all: the client's socket error. */
  errors: number;
  /** Of the errors: the client's connection to nginx reset or closed (connectionLost). */
  lost: number;
  byKind: Partial<Record<LoadKind, { requests: number; failed: number }>>;
  /** Failures by cause: the status ("502") or the client's error code ("ECONNRESET"). */
  causes: Record<string, number>;
  /** Answers per X-App-Version, with the failures under "failed". */
  versions: Record<string, number>;
}

export function countWindow(records: readonly RequestRecord[], from: number, to: number): WindowCount {
  const count: WindowCount = { requests: 0, failed: 0, non2xx: 0, errors: 0, lost: 0, byKind: {}, causes: {}, versions: {} };
  for (const r of records) {
    if (r.endedAt < from || r.endedAt > to) continue;
    const kind = (count.byKind[r.kind] ??= { requests: 0, failed: 0 });
    count.requests += 1;
    kind.requests += 1;
    if (!failed(r)) {
      const version = r.version ?? '?';
      count.versions[version] = (count.versions[version] ?? 0) + 1;
      continue;
    }
    count.failed += 1;
    kind.failed += 1;
    if (r.status === 0) count.errors += 1;
    else count.non2xx += 1;
    if (connectionLost(r)) count.lost += 1;
    const cause = r.status === 0 ? (r.error ?? 'error') : String(r.status);
    count.causes[cause] = (count.causes[cause] ?? 0) + 1;
    count.versions.failed = (count.versions.failed ?? 0) + 1;
  }
  return count;
}

/** Requests sent before `at` and not ended by then: what the clients had in flight at that instant. */
export function inFlightAt(records: readonly RequestRecord[], at: number): number {
  return records.filter((r) => r.sentAt <= at && r.endedAt > at).length;
}

/**
 * ms from `at` to the end of the first 2xx answer that ended after it and matches; with
 * `sentAfter`, only requests sent after `at` count (an answer the killed process had already
 * written before it died can still be read a moment later). Null when none came.
 */
export function firstAnswerAfter(records: readonly RequestRecord[], at: number, match: (r: RequestRecord) => boolean, sentAfter = false): number | null {
  let first: number | null = null;
  for (const r of records) {
    if (failed(r) || r.endedAt <= at || (sentAfter && r.sentAt < at) || !match(r)) continue;
    if (first === null || r.endedAt < first) first = r.endedAt;
  }
  return first === null ? null : first - at;
}

/** ms from `at` to the end of the last failed request within [at, to]; null when none failed. */
export function lastFailureBefore(records: readonly RequestRecord[], at: number, to: number): number | null {
  let last: number | null = null;
  for (const r of records) if (failed(r) && r.endedAt >= at && r.endedAt <= to && (last === null || r.endedAt > last)) last = r.endedAt;
  return last === null ? null : last - at;
}

/** When failed requests ended, in ms from `at`, within [from, to]: the first `limit` of them. */
export function failureTimes(records: readonly RequestRecord[], at: number, from: number, to: number, limit = 100): number[] {
  return records
    .filter((r) => failed(r) && r.endedAt >= from && r.endedAt <= to)
    .map((r) => r.endedAt - at)
    .sort((a, b) => a - b)
    .slice(0, limit);
}
