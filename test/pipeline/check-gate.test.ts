import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { CheckGate } from '../../src/github/check-gate.js';
import { GitHubStatusReporter } from '../../src/github/status-reporter.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import { DeployQueue } from '../../src/pipeline/queue.js';
import type { TriggerRequest } from '../../src/pipeline/trigger.js';
import { createGitHubClient } from '../../src/util/github-client.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { journalRuns } from '../support/journal.js';

const REPO = 'inu-appcenter/cafeteria-server';

function push(sha: string): TriggerRequest {
  return { app: 'cafeteria', kind: 'deploy', ref: 'refs/heads/main', sha, fromSha: null, source: 'push', deliveryId: null, requestedBy: 'test' };
}

/** A gated app on real nginx and git, the fake GitHub API read by the gate and written by the reporter. */
async function gated(t: TestContext, waitForChecks: string) {
  const github = await startGitHubServer(t);
  const setup = await setupDuet(t, {
    tags: { v1: {} },
    app: { deploy_on: `{ branches: [main], wait_for_checks: ${waitForChecks} }` },
    top: { github: `{ api_url: "${github.url}" }` },
  });
  await setup.succeed(['deploy', '--ref', 'v1', '--skip-checks']);
  const open = async (): Promise<DeployQueue> => {
    const logger = pino({ level: process.env.DEBUG_GATE ? 'debug' : 'silent' });
    const client = createGitHubClient({ apiUrl: github.url, token: 'ghs_test', retries: 0 });
    const reporter = new GitHubStatusReporter({ config: setup.config, client, logger, outboxPath: `${setup.dir}/github-outbox.ndjson`, retryBaseMs: 10 });
    const gate = new CheckGate({ config: setup.config, client, logger });
    const queue = await DeployQueue.open({ config: setup.config, observers: [reporter], gate, logger });
    t.after(async () => {
      await queue.close();
      await reporter.close();
    });
    return queue;
  };
  return { github, setup, open };
}

async function stateOf(queue: DeployQueue, id: string, states: Deploy['state'][], timeoutMs = 60_000): Promise<Deploy> {
  const found = await pollUntil(async () => (states.includes(queue.get(id)!.state) ? queue.get(id) : undefined), { timeoutMs, maxIntervalMs: 100 });
  assert.ok(found, `deploy ${id} is ${queue.get(id)?.state}, not ${states.join('/')}`);
  return found;
}

function statusesOf(github: GitHubServer, sha: string): Array<{ state: string; description: string }> {
  return github.matching(new RegExp(`/repos/${REPO}/statuses/${sha}$`), 'POST').map((r) => r.body as { state: string; description: string });
}

async function deploysOf(setup: DuetSetup): Promise<Deploy[]> {
  return (await journalRuns(setup.app.paths.journal)).filter((run) => run.kind === 'deploy');
}

test('check runs pending, then green: the push waits, the idle color is prepared meanwhile, it deploys once, after green', async (t) => {
  const { github, setup, open } = await gated(t, '{ poll_s: 600 }');
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  const checks = github.serveChecks(REPO, sha);
  checks.set({
    checkRuns: [
      { name: 'test', status: 'completed', conclusion: 'success' },
      { name: 'build', status: 'in_progress' },
    ],
  });
  const queue = await open();

  const { id } = await queue.submit(push(sha));
  await stateOf(queue, id, ['waiting_for_checks']);
  await github.waitFor(() => statusesOf(github, sha).some((s) => s.description === 'Waiting for CI: 1 of 2 checks done'));
  // prepare_while_waiting: green (the idle color) is updated and built while CI runs, never switched to.
  const prepared = await pollUntil(async () => (await journalRuns(setup.app.paths.journal)).find((r) => r.kind === 'update-instance' && r.outcome), {
    timeoutMs: 60_000,
  });
  assert.equal(prepared?.outcome, 'success', JSON.stringify(prepared));
  assert.equal(prepared?.color, 'green');
  assert.equal(queue.get(id)!.state, 'waiting_for_checks');
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'nothing switched before green');
  assert.equal((await deploysOf(setup)).length, 1, 'only the first deploy ran');

  checks.set({
    checkRuns: [
      { name: 'test', status: 'completed', conclusion: 'success' },
      { name: 'build', status: 'completed', conclusion: 'success' },
    ],
  });
  assert.equal(queue.wakeChecks(REPO, sha), 1, 'a webhook about the commit wakes its wait (poll_s is 600)');
  const done = await stateOf(queue, id, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'succeeded', done.summary ?? '');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  const deploys = await deploysOf(setup);
  assert.equal(deploys.length, 2, 'it deployed once');
  assert.equal(deploys.at(-1)!.steps.find((s) => s.name === 'update')?.status, 'skipped', 'the deploy found green prepared');
  assert.equal(deploys[0]!.reason, 'CI not waited for (--skip-checks)', 'the skip is journaled');
  await github.waitFor(() => statusesOf(github, sha).at(-1)?.state === 'success');
  assert.deepEqual(statusesOf(github, sha)[0], { ...statusesOf(github, sha)[0], state: 'pending', description: 'Queued' });
});

test('a failing check: no deploy, and failure on duet status naming the check', async (t) => {
  const { github, setup, open } = await gated(t, '{ poll_s: 1, prepare_while_waiting: false }');
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  github.serveChecks(REPO, sha).set({
    checkRuns: [
      { name: 'lint', status: 'in_progress' },
      { name: 'test', status: 'completed', conclusion: 'failure' },
    ],
  });
  const queue = await open();

  const { id } = await queue.submit(push(sha));
  const done = await stateOf(queue, id, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'failed');
  assert.equal(done.summary, 'CI check "test" failed');
  await github.waitFor(() => statusesOf(github, sha).at(-1)?.state === 'failure');
  assert.equal(statusesOf(github, sha).at(-1)?.description, 'CI check "test" failed');
  assert.equal((await deploysOf(setup)).length, 1, 'no deploy ran');
  assert.match((await setup.get('/')).body, /cafeteria v1/);
});

test('CI that does not finish in timeout_s: error with the reason, no deploy; the polls between cost 304s', async (t) => {
  const { github, setup, open } = await gated(t, '{ poll_s: 1, timeout_s: 4, prepare_while_waiting: false }');
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  const checks = github.serveChecks(REPO, sha);
  checks.set({ checkRuns: [{ name: 'test', status: 'queued' }] });
  const queue = await open();

  const { id } = await queue.submit(push(sha));
  const done = await stateOf(queue, id, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'errored');
  assert.equal(done.summary, 'CI did not finish within 4 s (0 of 1 checks done)');
  await github.waitFor(() => statusesOf(github, sha).at(-1)?.state === 'error');
  assert.equal(statusesOf(github, sha).at(-1)?.description, 'CI did not finish within 4 s (0 of 1 checks done)');
  assert.equal((await deploysOf(setup)).length, 1, 'no deploy ran');

  // The check runs never changed: every poll after the first was answered 304 (no rate limit spent).
  const runsAsked = github.matching(new RegExp(`/commits/${sha}/check-runs$`), 'GET');
  assert.ok(runsAsked.length >= 3, `${runsAsked.length} polls`);
  assert.ok(runsAsked.slice(1).every((r) => typeof r.headers['if-none-match'] === 'string'));
  assert.ok(checks.notModified() >= runsAsked.length - 1, `${checks.notModified()} answered 304 of ${checks.reads()}`);
});

test('a newer push supersedes the one waiting for CI; only the newer deploys, once green', async (t) => {
  const { github, setup, open } = await gated(t, '{ poll_s: 1, prepare_while_waiting: false }');
  const older = await setup.repo.commit({ VERSION: 'v2\n' });
  const newer = await setup.repo.commit({ VERSION: 'v3\n' });
  github.serveChecks(REPO, older).set({ checkRuns: [{ name: 'test', status: 'in_progress' }] });
  const newerChecks = github.serveChecks(REPO, newer);
  newerChecks.set({ checkRuns: [{ name: 'test', status: 'in_progress' }] });
  const queue = await open();

  const first = await queue.submit(push(older));
  await stateOf(queue, first.id, ['waiting_for_checks']);
  const second = await queue.submit(push(newer));
  const superseded = await stateOf(queue, first.id, ['superseded']);
  assert.equal(superseded.supersededBy, second.id);
  await stateOf(queue, second.id, ['waiting_for_checks']);

  newerChecks.set({ checkRuns: [{ name: 'test', status: 'completed', conclusion: 'success' }] });
  const done = await stateOf(queue, second.id, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'succeeded', done.summary ?? '');
  assert.match((await setup.get('/')).body, /cafeteria v3/);
  const deploys = await deploysOf(setup);
  assert.equal(deploys.length, 2);
  assert.equal(deploys.at(-1)!.resolvedSha, newer);
});

test('a trigger waiting for CI when duet serve stops waits again at the next start, and deploys once green', async (t) => {
  const { github, setup, open } = await gated(t, '{ poll_s: 1, prepare_while_waiting: false }');
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  const checks = github.serveChecks(REPO, sha);
  checks.set({ checkRuns: [{ name: 'test', status: 'in_progress' }] });
  const first = await open();
  const { id } = await first.submit(push(sha));
  await stateOf(first, id, ['waiting_for_checks']);
  await first.close();

  const second = await open();
  assert.equal(second.get(id)!.state, 'waiting_for_checks', 'still waiting: the trigger was not dropped');
  checks.set({ checkRuns: [{ name: 'test', status: 'completed', conclusion: 'success' }] });
  const done = await stateOf(second, id, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'succeeded', done.summary ?? '');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal((await deploysOf(setup)).length, 2);
});

test('duet deploy from the shell waits for CI too: red refuses with the check named, green deploys that commit', async (t) => {
  const { github, setup } = await gated(t, '{ poll_s: 1, timeout_s: 60 }');
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  const checks = github.serveChecks(REPO, sha);
  const env = { DUET_GITHUB_TOKEN: 'ghs_test' };
  checks.set({ checkRuns: [{ name: 'test', status: 'completed', conclusion: 'failure' }] });
  const red = await setup.duet(['deploy'], env);
  assert.equal(red.code, 1, red.stderr);
  assert.match(red.stderr, /duet: checks: CI check "test" failed/);
  assert.match((await setup.get('/')).body, /cafeteria v1/);

  checks.set({ checkRuns: [{ name: 'test', status: 'completed', conclusion: 'success' }] });
  const green = await setup.succeed(['deploy'], env);
  assert.match(green.stderr, /CI green: 1 check passed/);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal((await deploysOf(setup)).at(-1)!.resolvedSha, sha);
});

test('without a GitHub token duet serve cannot read CI: a gated push errors at once, saying so, and nothing deploys', async (t) => {
  const { setup } = await gated(t, '{ prepare_while_waiting: false }');
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  const queue = await DeployQueue.open({ config: setup.config });
  t.after(() => queue.close());
  const { id } = await queue.submit(push(sha));
  const done = await stateOf(queue, id, ['succeeded', 'failed', 'errored']);
  assert.deepEqual([done.state, done.summary], ['errored', 'wait_for_checks needs a GitHub token (DUET_GITHUB_TOKEN) to read the checks']);
  assert.equal((await deploysOf(setup)).length, 1);
});
