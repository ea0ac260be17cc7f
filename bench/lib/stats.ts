/** Small numeric helpers. Nothing here invents a value: an empty input gives null. */

export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** The middle value; with an even count, the mean of the two middle ones. */
export function median(values: readonly (number | null | undefined)[]): number | null {
  const present = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (present.length === 0) return null;
  const mid = Math.floor(present.length / 2);
  return present.length % 2 === 1 ? present[mid]! : (present[mid - 1]! + present[mid]!) / 2;
}

export function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export function round(value: number | null | undefined, digits = 1): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export interface Interval {
  start: number;
  end: number;
}

/** Total length of the union of intervals, clipped to [from, to]: overlapping time counts once. */
export function unionLength(intervals: readonly Interval[], from = -Infinity, to = Infinity): number {
  const clipped = intervals
    .map((i) => ({ start: Math.max(i.start, from), end: Math.min(i.end, to) }))
    .filter((i) => i.end > i.start)
    .sort((a, b) => a.start - b.start);
  let total = 0;
  let current: Interval | undefined;
  for (const interval of clipped) {
    if (!current || interval.start > current.end) {
      if (current) total += current.end - current.start;
      current = { ...interval };
    } else {
      current.end = Math.max(current.end, interval.end);
    }
  }
  if (current) total += current.end - current.start;
  return total;
}

/** The mean of a sample and its standard error (sample standard deviation / √n). */
export interface MeanWithError {
  n: number;
  mean: number;
  standardError: number;
}

export function meanWithError(values: readonly number[]): MeanWithError | null {
  const n = values.length;
  if (n === 0) return null;
  const mean = sum(values) / n;
  const variance = n > 1 ? values.reduce((t, v) => t + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { n, mean, standardError: Math.sqrt(variance / n) };
}

/**
 * Whether `a`'s mean exceeds `b`'s by more than two standard errors of the difference: a
 * difference the samples' own spread cannot explain (about 95% one-sided for these small samples).
 */
export function clearlyAbove(a: MeanWithError, b: MeanWithError): boolean {
  return a.mean - b.mean > 2 * Math.sqrt(a.standardError ** 2 + b.standardError ** 2);
}
