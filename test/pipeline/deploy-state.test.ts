import assert from 'node:assert/strict';
import { test } from '../support/test.js';
import { InternalError } from '../../src/errors.js';
import { apply, checkApply, isFinal, type Deploy } from '../../src/pipeline/deploy-state.js';
import type { JournalEvent } from '../../src/pipeline/journal.js';
import { trigger } from '../http/http-harness.js';

const id = '20261203-160000-abcdef';
const at = '2026-12-03T16:00:00.000Z';
type EventOf<T> = T extends unknown ? Omit<T, 'id' | 'at'> : never;
const fold = (...events: Array<EventOf<JournalEvent>>): Deploy | undefined =>
  events.reduce<Deploy | undefined>((deploy, event) => apply(deploy, { ...event, id, at }, 'cafeteria'), undefined);
const stateOf = (...events: Array<EventOf<JournalEvent>>) => fold(...events)?.state;

const accepted = { type: 'accepted', trigger: trigger({ id }) } as const;
const dequeued = { type: 'dequeued' } as const;
const begin = { type: 'begin', kind: 'deploy', ref: 'main', pid: 1 } as const;
const settled = (state: 'succeeded' | 'failed' | 'errored') => ({ type: 'settled', state, summary: state }) as const;

test("one deploy state, kept by one transition function over the trigger's events and the run's, whichever exist", () => {
  assert.equal(stateOf(accepted), 'queued');
  assert.equal(stateOf(accepted, dequeued), 'running', 'started, nothing journaled yet');
  assert.equal(stateOf(accepted, dequeued, begin, { type: 'step', step: 'update', status: 'started' }), 'running');
  const watching = [begin, { type: 'step', step: 'switch', status: 'done' }, { type: 'step', step: 'watch', status: 'started' }] as const;
  assert.equal(stateOf(accepted, dequeued, ...watching), 'watching');
  assert.equal(stateOf(...watching), 'watching', 'a deploy from the CLI');
  assert.equal(stateOf(...watching, { type: 'step', step: 'watch', status: 'done' }), 'running', 'watched, retiring');
  // The run's outcome counts while the queue's settled line lags it by a moment.
  assert.equal(stateOf(accepted, dequeued, begin, { type: 'end', outcome: 'success' }), 'succeeded');
  assert.equal(stateOf(accepted, dequeued, begin, { type: 'end', outcome: 'failed' }), 'failed');
  assert.equal(stateOf(begin, { type: 'end', outcome: 'noop' }), 'succeeded');
  assert.equal(stateOf(begin, { type: 'end', outcome: 'interrupted' }), 'interrupted');
  // The trigger's settled line is its final word, whatever the run said before or says after.
  assert.equal(stateOf(accepted, dequeued, begin, { type: 'end', outcome: 'failed' }, settled('errored')), 'errored');
  assert.equal(stateOf(accepted, dequeued, begin, settled('errored'), { type: 'end', outcome: 'success' }), 'errored');
  assert.equal(stateOf(accepted, { type: 'superseded', by: 'later', summary: 'Superseded' }), 'superseded');
  // A resumed trigger: its run closed as interrupted by another lock holder, then begun again.
  assert.equal(stateOf(accepted, dequeued, begin, { type: 'end', outcome: 'interrupted' }, dequeued, begin), 'running');
  for (const state of ['succeeded', 'failed', 'errored', 'superseded', 'interrupted'] as const) assert.ok(isFinal(state), state);
  for (const state of ['queued', 'running', 'watching'] as const) assert.ok(!isFinal(state), state);
});

test("a deploy's state moves only along the state machine; anything else is duet's own fault, and a reader skips it", () => {
  const at2 = { id, at };
  for (const [events, next] of [
    [[accepted], dequeued],
    [[accepted], { type: 'superseded', by: 'later', summary: 'x' }],
    [[accepted], settled('failed')],
    [[accepted], settled('errored')],
    [[accepted, dequeued], dequeued],
    [[accepted, dequeued], settled('succeeded')],
    [[accepted, dequeued], settled('failed')],
    [[accepted, dequeued, begin, { type: 'end', outcome: 'success' }], settled('succeeded')],
  ] as const) {
    assert.doesNotThrow(() => checkApply(fold(...events), { ...next, ...at2 }), `${events.map((e) => e.type).join(',')} -> ${next.type}`);
  }
  for (const [events, next, from] of [
    [[accepted], settled('succeeded'), 'queued'],
    [[accepted, dequeued], { type: 'superseded', by: 'later', summary: 'x' }, 'running'],
    [[accepted, dequeued, settled('succeeded')], dequeued, 'succeeded'],
    [[accepted, dequeued, settled('failed')], settled('succeeded'), 'failed'],
    [[accepted, { type: 'superseded', by: 'later', summary: 'x' }], dequeued, 'superseded'],
    [[accepted, dequeued, begin, { type: 'end', outcome: 'success' }], dequeued, 'succeeded'],
    [[accepted], accepted, 'queued'],
  ] as const) {
    const before = fold(...events);
    const event = { ...next, ...at2 } as JournalEvent;
    assert.throws(
      () => checkApply(before, event),
      (error: unknown) => error instanceof InternalError && error.message.includes(`a ${next.type} event in state ${from}`),
    );
    assert.equal(apply(before, event, 'cafeteria'), before, `a reader skips ${next.type} in state ${from}`);
  }
});
