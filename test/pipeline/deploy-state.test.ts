import assert from 'node:assert/strict';
import { test } from '../support/test.js';
import { InternalError } from '../../src/errors.js';
import { checkTransition, deployState, isFinal } from '../../src/pipeline/deploy-state.js';
import { foldEvents, type JournalEvent } from '../../src/pipeline/journal.js';
import type { TriggerState } from '../../src/pipeline/trigger.js';
import { trigger as makeTrigger } from '../http/http-harness.js';

const id = '20261203-160000-abcdef';
const at = '2026-12-03T16:00:00.000Z';
const trigger = (state: TriggerState) => makeTrigger({ id, state });
type EventOf<T> = T extends unknown ? Omit<T, 'id' | 'at'> : never;
const record = (...events: Array<EventOf<JournalEvent>>) => foldEvents(events.map((e) => ({ ...e, id, at })))[0];
const begin = { type: 'begin', kind: 'deploy', ref: 'main', pid: 1 } as const;

test("one deploy state from the queue's trigger and the journal's record, whichever exist", () => {
  assert.equal(deployState(trigger('queued'), undefined), 'queued');
  assert.equal(deployState(trigger('running'), undefined), 'running', 'started, nothing journaled yet');
  assert.equal(deployState(trigger('running'), record(begin, { type: 'step', step: 'update', status: 'started' })), 'running');
  const watching = record(begin, { type: 'step', step: 'switch', status: 'done' }, { type: 'step', step: 'watch', status: 'started' });
  assert.equal(deployState(trigger('running'), watching), 'watching');
  assert.equal(deployState(undefined, watching), 'watching', 'a deploy from the CLI');
  // The journal's outcome counts while the queue lags it by a moment.
  assert.equal(deployState(trigger('running'), record(begin, { type: 'end', outcome: 'success' })), 'succeeded');
  assert.equal(deployState(trigger('running'), record(begin, { type: 'end', outcome: 'failed' })), 'failed');
  assert.equal(deployState(undefined, record(begin, { type: 'end', outcome: 'noop' })), 'succeeded');
  assert.equal(deployState(undefined, record(begin, { type: 'end', outcome: 'interrupted' })), 'interrupted');
  // A final trigger is final, whatever the journal says.
  assert.equal(deployState(trigger('errored'), record(begin)), 'errored');
  assert.equal(deployState(trigger('superseded'), undefined), 'superseded');
  for (const state of ['succeeded', 'failed', 'errored', 'superseded', 'interrupted'] as const) assert.ok(isFinal(state), state);
  for (const state of ['queued', 'running', 'watching'] as const) assert.ok(!isFinal(state), state);
});

test("a trigger's state moves only along the state machine; anything else is duet's own fault", () => {
  for (const [from, to] of [
    ['queued', 'running'],
    ['queued', 'superseded'],
    ['queued', 'failed'],
    ['queued', 'errored'],
    ['running', 'running'],
    ['running', 'succeeded'],
    ['running', 'failed'],
    ['running', 'errored'],
  ] as const) {
    assert.doesNotThrow(() => checkTransition(id, from, to), `${from} -> ${to}`);
  }
  for (const [from, to] of [
    ['queued', 'succeeded'],
    ['running', 'queued'],
    ['running', 'superseded'],
    ['succeeded', 'running'],
    ['failed', 'succeeded'],
    ['superseded', 'running'],
  ] as const) {
    assert.throws(
      () => checkTransition(id, from, to),
      (error: unknown) => error instanceof InternalError && error.message.includes(`${from} to ${to}`),
    );
  }
});
