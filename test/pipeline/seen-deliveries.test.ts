import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { SeenDeliveries, seenLines } from '../../src/pipeline/seen-deliveries.js';
import type { TriggerEvent } from '../../src/pipeline/trigger.js';
import { trigger } from '../http/http-harness.js';

const digest = (n: number): string => n.toString(16).padStart(64, '0');

/** Delivery n accepted at `at`: its delivery id and its body digest are two keys. */
function accepted(n: number, at: string): TriggerEvent {
  const id = `t-${n}`;
  return { type: 'accepted', id, at, trigger: trigger({ id, deliveryId: `d-${n}`, bodyDigest: digest(n), receivedAt: at, source: 'push' }) };
}

/** Delivery n's body replayed under a new delivery id: the deploy it is a duplicate of. */
function replayOf(seen: SeenDeliveries, n: number): string | undefined {
  return seen.duplicateOf({
    app: 'cafeteria',
    kind: 'deploy',
    ref: null,
    sha: null,
    fromSha: null,
    source: 'push',
    deliveryId: `new-${n}`,
    bodyDigest: digest(n),
    requestedBy: null,
  })?.id;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

test('past 3 days only the newest 1,000 keys of an app are kept, in memory and in what a compaction writes', () => {
  const fourDaysAgo = new Date(Date.now() - 4 * 24 * 3600 * 1000).toISOString();
  const events = [...range(0, 600).map((n) => accepted(n, fourDaysAgo)), ...range(600, 610).map((n) => accepted(n, new Date().toISOString()))];
  const seen = new SeenDeliveries();
  for (const event of events) seen.note('cafeteria', event);
  // The 10 of today are 20 keys; with the newest 490 older ones (980 keys), 1,000: 110 to 609.
  const oldestKept = 110;
  assert.equal(replayOf(seen, oldestKept - 1), undefined, 'forgotten');
  for (const n of [oldestKept, 599, 600, 609]) assert.equal(replayOf(seen, n), `t-${n}`);
  assert.deepEqual(
    seenLines(events).map((line) => line.id),
    range(oldestKept, 610).map((n) => `t-${n}`),
    'the same ones on disk',
  );
});

test('within 3 days every delivery is kept, however many more than the newest 1,000 keys', () => {
  const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000).toISOString();
  // 600 deliveries are 1,200 keys: the oldest are past the 1,000 newest, not past 3 days.
  const events = range(0, 600).map((n) => accepted(n, twoDaysAgo));
  const seen = new SeenDeliveries();
  for (const event of events) seen.note('cafeteria', event);
  for (const n of [0, 99, 100, 599]) assert.equal(replayOf(seen, n), `t-${n}`);
  assert.equal(seenLines(events).length, 600, 'all of them on disk');
});

test('within 3 days an app keeps 50,000 keys at most: past them, the oldest delivery goes first', () => {
  const cap = 50_000;
  const events = range(0, cap / 2 + 1).map((n) => accepted(n, new Date().toISOString()));
  const seen = new SeenDeliveries();
  for (const event of events) seen.note('cafeteria', event);
  assert.equal(replayOf(seen, 0), undefined);
  assert.equal(replayOf(seen, 1), 't-1');
  assert.equal(replayOf(seen, events.length - 1), `t-${events.length - 1}`);
  const lines = seenLines(events);
  assert.deepEqual([lines.length, lines[0]?.id], [cap / 2, 't-1']);
});
