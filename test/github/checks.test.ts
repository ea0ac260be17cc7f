import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { decideChecks, type CheckRun, type CommitStatus } from '../../src/github/checks.js';

const OWN = 'duet/web';
let nextId = 1;
const run = (name: string, status: string, conclusion: string | null = null, id = nextId++): CheckRun => ({ id, name, status, conclusion });
const decide = (checkRuns: CheckRun[], statuses: CommitStatus[] = [], required: 'all' | string[] = 'all') =>
  decideChecks({ checkRuns, statuses, required, ownContext: OWN });

test('every check run completed as success, neutral or skipped, and no status: green', () => {
  const decision = decide([run('test', 'completed', 'success'), run('lint', 'completed', 'neutral'), run('docs', 'completed', 'skipped')]);
  assert.deepEqual(decision, { verdict: 'green', summary: 'CI green: 3 checks passed' });
});

test('runs still going: pending, counted "3 of 5 checks done" over runs and statuses', () => {
  const decision = decide(
    [run('a', 'completed', 'success'), run('b', 'in_progress'), run('c', 'queued'), run('d', 'completed', 'success')],
    [{ context: 'ci/jenkins', state: 'success' }],
  );
  assert.deepEqual(decision, { verdict: 'pending', done: 3, total: 5, summary: 'waiting for CI: 3 of 5 checks done' });
});

test('one failed run is red at once, naming it, whatever still runs', () => {
  const decision = decide([run('build', 'in_progress'), run('test', 'completed', 'failure')]);
  assert.equal(decision.verdict, 'red');
  assert.equal(decision.verdict === 'red' && decision.failed, 'test');
  assert.equal(decision.summary, 'CI check "test" failed');
  for (const conclusion of ['cancelled', 'timed_out', 'action_required', 'stale', 'startup_failure']) {
    assert.equal(decide([run('e2e', 'completed', conclusion)]).verdict, 'red', conclusion);
  }
  assert.equal(decide([run('e2e', 'completed', 'timed_out')]).summary, 'CI check "e2e" timed out');
});

test('only the latest attempt of a check counts: a re-run that passed makes it green, one that failed red', () => {
  assert.equal(decide([run('test', 'completed', 'failure', 10), run('test', 'completed', 'success', 11)]).verdict, 'green');
  assert.equal(decide([run('test', 'completed', 'success', 21), run('test', 'completed', 'failure', 20)]).verdict, 'green');
  assert.equal(decide([run('test', 'completed', 'success', 30), run('test', 'in_progress', null, 31)]).verdict, 'pending');
});

test("duet's own status context is never waited for: its pending does not hold the deploy, nor counts", () => {
  const decision = decide([run('test', 'completed', 'success')], [{ context: OWN, state: 'pending' }]);
  assert.deepEqual(decision, { verdict: 'green', summary: 'CI green: 1 check passed' });
  assert.equal(decide([run(OWN, 'completed', 'failure'), run('test', 'completed', 'success')]).verdict, 'green');
});

test('the combined status: success or empty is green, pending waits, failure or error is red naming the context', () => {
  const passed = [run('test', 'completed', 'success')];
  assert.equal(decide(passed, [{ context: 'ci/a', state: 'success' }]).verdict, 'green');
  assert.equal(decide(passed, [{ context: 'ci/a', state: 'pending' }]).verdict, 'pending');
  const red = decide(passed, [{ context: 'ci/a', state: 'error' }]);
  assert.deepEqual(red, { verdict: 'red', failed: 'ci/a', summary: 'CI status "ci/a" is error' });
  assert.equal(decide([], [{ context: 'ci/a', state: 'success' }]).verdict, 'green', 'statuses alone decide when there are no check runs');
});

test('nothing reported yet is not green: CI may not have registered its suite right after the push', () => {
  assert.deepEqual(decide([]), { verdict: 'pending', done: 0, total: 0, summary: 'waiting for CI: no checks reported yet' });
  assert.deepEqual(decide([], [{ context: OWN, state: 'pending' }]).verdict, 'pending');
});

test('named checks: only those runs are required, a missing one is waited for, others may fail', () => {
  const runs = [run('test', 'completed', 'success'), run('flaky', 'completed', 'failure')];
  assert.equal(decide(runs, [], ['test']).verdict, 'green');
  const missing = decide(runs, [], ['test', 'build']);
  assert.deepEqual(missing, { verdict: 'pending', done: 1, total: 2, summary: 'waiting for CI: 1 of 2 checks done' });
  assert.equal(decide(runs, [], ['test', 'flaky']).verdict, 'red');
  assert.equal(decide(runs, [{ context: 'build', state: 'success' }], ['test', 'build']).verdict, 'green', 'a status of that name stands for it');
});
