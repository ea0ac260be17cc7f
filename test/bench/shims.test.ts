import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shimStartDelayWithin, type Calibration, type ChildCall } from '../../bench/lib/shims.js';

const calibration: Calibration = { shimMs: 20, shellMs: 25, startDelayMs: 12, samples: 15 };
const call = (label: string, start: number): ChildCall => ({ label, start, end: start + 40, rc: 0, args: '' });

test('the shims start delay counts each shimmed call that began in the window, and nothing else', () => {
  const calls = [call('git', 100), call('nginx', 1_000), call('build', 1_010), call('cp', 1_020), call('nginx', 2_000)];
  // nginx and cp began in [900, 1500]; build is wrapped by `timed` in a shell, not a PATH shim.
  assert.equal(shimStartDelayWithin(calls, 900, 1_500, calibration), 24);
  assert.equal(shimStartDelayWithin(calls, 1_000, 1_000, calibration), 12, 'the bounds are inclusive');
  assert.equal(shimStartDelayWithin(calls, 1_100, 1_900, calibration), 0);
  assert.equal(shimStartDelayWithin([], 0, 10_000, calibration), 0);
});
