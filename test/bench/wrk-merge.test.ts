import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mergeWrk, QUANTILE_GRID, type WrkResult } from '../../bench/lib/wrk.js';
import { clearlyAbove, meanWithError } from '../../bench/lib/stats.js';

/** A wrk result whose latencies are spread evenly over [fromMs, toMs]. */
function uniformRun(requests: number, fromMs: number, toMs: number, extra: Partial<WrkResult> = {}): WrkResult {
  const at = (p: number): number => fromMs + ((toMs - fromMs) * p) / 100;
  return {
    requests,
    non2xx: 0,
    exhausted: 0,
    errors: { connect: 0, read: 0, write: 0, timeout: 0 },
    socketErrors: 0,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    maxMs: toMs,
    durationS: 1,
    requestsPerS: requests,
    counts: { v1: requests },
    quantilesUs: QUANTILE_GRID.map((p) => Math.round(at(p) * 1000)),
    ...extra,
  };
}

test('mergeWrk: counts add up and percentiles are those of the runs together', () => {
  const fast = uniformRun(1000, 1, 2, { socketErrors: 3, errors: { connect: 0, read: 3, write: 0, timeout: 0 } });
  const slow = uniformRun(1000, 3, 4, { non2xx: 2, counts: { v2: 1000 } });
  const merged = mergeWrk([fast, slow]);
  assert.equal(merged.requests, 2000);
  assert.equal(merged.non2xx, 2);
  assert.equal(merged.socketErrors, 3);
  assert.equal(merged.errors.read, 3);
  assert.deepEqual(merged.counts, { v1: 1000, v2: 1000 });
  assert.equal(merged.durationS, 2);
  assert.equal(merged.maxMs, 4);
  // Half the requests took 1-2 ms, half 3-4 ms: the median is where the first half ends, p99 is
  // 98% of the way through the slow run, p90 80% of the way.
  assert.ok(Math.abs(merged.p50Ms - 2) <= 0.01, `p50 ${merged.p50Ms}`);
  assert.ok(Math.abs(merged.p90Ms - 3.8) <= 0.01, `p90 ${merged.p90Ms}`);
  assert.ok(Math.abs(merged.p99Ms - 3.98) <= 0.01, `p99 ${merged.p99Ms}`);
});

test('mergeWrk: a run is weighted by its requests', () => {
  const merged = mergeWrk([uniformRun(9000, 1, 2), uniformRun(1000, 11, 12)]);
  // 90% of the requests are under 2 ms, so p50 falls in the big run and p99 in the small one.
  assert.ok(Math.abs(merged.p50Ms - (1 + 50 / 90)) <= 0.01, `p50 ${merged.p50Ms}`);
  assert.ok(Math.abs(merged.p99Ms - 11.9) <= 0.01, `p99 ${merged.p99Ms}`);
});

test('mergeWrk: no requests gives no percentiles, and a run without its grid is refused', () => {
  const empty = uniformRun(0, 0, 0);
  assert.ok(Number.isNaN(mergeWrk([empty, empty]).p99Ms));
  const { quantilesUs: _grid, ...bare } = uniformRun(100, 1, 2);
  assert.throws(() => mergeWrk([uniformRun(100, 1, 2), bare]), /without its percentile grid/);
});

test('meanWithError and clearlyAbove: a difference counts only beyond the spread of the samples', () => {
  const noisyNginx = meanWithError([0, 12, 3, 25, 5])!;
  assert.equal(noisyNginx.mean, 9);
  assert.ok(Math.abs(noisyNginx.standardError - Math.sqrt(99.5 / 5)) < 1e-9);
  assert.equal(clearlyAbove(meanWithError([14, 2, 20, 9, 15])!, noisyNginx), false, 'within the noise');
  assert.equal(clearlyAbove(meanWithError([30, 28, 35, 31, 33])!, noisyNginx), true, 'beyond it');
  assert.equal(meanWithError([]), null);
});
