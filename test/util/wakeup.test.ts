import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { Wakeup } from '../../src/util/wakeup.js';

// Supervision sleeps on a Wakeup between its looks; a process exit wakes it. A wake that came
// while it was busy (restarting the color) was taken by the listener its last sleep left behind,
// so the next sleep lasted its whole 500 ms: a restart after a request of death came half a
// second late, after the next request of death had queued up.

test('a wake while the sleeper is busy ends its next sleep at once, though the last sleep timed out', { timeout: 5_000 }, async () => {
  const wakeup = new Wakeup();
  await wakeup.next(10); // times out: nobody woke it
  wakeup.wake(); // while busy
  const started = Date.now();
  await wakeup.next(2_000);
  assert.ok(Date.now() - started < 1_000, `the sleep after the wake lasted ${Date.now() - started} ms`);
});

test('a sleep ends at its timeout, at its signal, and at a wake; a wake counts once', { timeout: 5_000 }, async () => {
  const wakeup = new Wakeup();
  let started = Date.now();
  await wakeup.next(30);
  assert.ok(Date.now() - started >= 25);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 20);
  started = Date.now();
  await wakeup.next(2_000, abort.signal);
  assert.ok(Date.now() - started < 1_000);
  setTimeout(() => wakeup.wake(), 20);
  await wakeup.next(2_000);
  started = Date.now();
  await wakeup.next(50); // the wake was used: this one sleeps
  assert.ok(Date.now() - started >= 45);
});
