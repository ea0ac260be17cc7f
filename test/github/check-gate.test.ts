import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { CheckGate } from '../../src/github/check-gate.js';
import { createGitHubClient } from '../../src/util/github-client.js';
import { pollUntil } from '../../src/util/poll.js';
import { startGitHubServer } from '../support/github-server.js';

const SHA = 'a'.repeat(40);

function setup(t: TestContext, githubUrl: string, pollS = 1) {
  const yaml = `state_dir: /tmp/duet-gate-test\ngithub: { api_url: "${githubUrl}" }\napps:\n  web: { repo: acme/web, clone_url: /nonexistent.git, deploy_on: { wait_for_checks: { poll_s: ${pollS} } } }\n`;
  const ended = new AbortController();
  t.after(() => ended.abort());
  const config = parseConfig(yaml, 'test.yml');
  const gate = new CheckGate({ config, client: createGitHubClient({ apiUrl: githubUrl, token: 'ghs_test', retries: 0 }) });
  const wait = (deadlineMs = 10_000) =>
    gate.wait(config.apps.get('web')!, SHA, { deadline: Date.now() + deadlineMs, signal: ended.signal, progress: () => {} });
  return { gate, wait };
}

test('every page of check runs is read: a failure on the second of two pages is red, naming it', async (t) => {
  const github = await startGitHubServer(t);
  const checks = github.serveChecks('acme/web', SHA);
  const runs = Array.from({ length: 130 }, (_, i) => ({ name: `job ${i}`, status: 'completed', conclusion: i === 120 ? 'cancelled' : 'success' }));
  checks.set({ checkRuns: runs });
  const { wait } = setup(t, github.url);
  assert.deepEqual(await wait(), { state: 'failed', summary: 'CI check "job 120" ended cancelled' });
  const pages = github.matching(/\/check-runs$/).map((r) => new URLSearchParams(r.url.split('?')[1]).get('page'));
  assert.deepEqual(pages, ['1', '2']);

  checks.set({ checkRuns: runs.map((run) => ({ ...run, conclusion: 'success' })) });
  assert.deepEqual(await wait(), { state: 'green', summary: 'CI green: 130 checks passed' });
});

test('a token GitHub refuses the checks to ends the wait at once, errored, naming the permission', async (t) => {
  const github = await startGitHubServer(t);
  github.respondAlways('GET', /\/check-runs$/, 403);
  const { wait } = setup(t, github.url);
  const verdict = await wait(60_000);
  assert.equal(verdict?.state, 'errored');
  assert.match(verdict?.summary ?? '', /GitHub refused to show the checks of aaaaaaa \(403: .*\): the token needs Checks: read and Commit statuses: read/);
  assert.equal(github.matching(/\/check-runs$/).length, 1, 'not asked again');
});

test('a wake ends the sleep between polls at once; a 5xx is asked again at the next poll', async (t) => {
  const github = await startGitHubServer(t);
  const checks = github.serveChecks('acme/web', SHA);
  checks.set({ checkRuns: [{ name: 'test', status: 'in_progress' }] });
  github.respond('GET', /\/check-runs$/, 502);
  const { gate, wait } = setup(t, github.url, 2);
  const waiting = wait(60_000);
  await github.waitFor((requests) => requests.some((r) => r.path.endsWith('/status')), 10_000);
  assert.equal(github.matching(/\/check-runs$/).length, 2, 'the 502, then the next poll');
  checks.set({ checkRuns: [{ name: 'test', status: 'completed', conclusion: 'success' }] });
  // Woken as soon as it sleeps again after that read (poll_s 2: far later on its own).
  assert.equal(await pollUntil(async () => (gate.wake('Acme/Web', SHA.toUpperCase()) === 1 ? true : undefined), { timeoutMs: 1500 }), true);
  assert.equal((await waiting)?.state, 'green');
  assert.equal(gate.wake('acme/web', SHA), 0, 'nothing waits any more');
});
