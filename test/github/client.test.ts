import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createGitHubClient } from '../../src/util/github-client.js';
import { startGitHubServer } from '../support/github-server.js';
import { captureLog, SHA, TOKEN } from './helpers.js';

const status = { owner: 'octo', repo: 'app', sha: SHA, state: 'pending', context: 'duet/app' } as const;

test('an Enterprise apiUrl with a path prefix (and a trailing slash) reaches the prefixed API', async (t) => {
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const client = createGitHubClient({ apiUrl: `${github.url}/`, token: TOKEN, retries: 0 });
  await client.rest.repos.createCommitStatus(status);
  assert.deepEqual(
    github.requests.map((request) => request.url),
    [`/api/v3/repos/octo/app/statuses/${SHA}`],
  );
  const headers = github.requests[0]!.headers;
  assert.equal(headers.authorization, `token ${TOKEN}`);
  assert.match(String(headers['user-agent']), /^duet /, 'a default user agent naming duet');
});

test('the retry plugin retries a 500 but never a 422', async (t) => {
  const github = await startGitHubServer(t);
  const client = createGitHubClient({ apiUrl: github.url, token: TOKEN, retries: 1 });
  github.respond('POST', /statuses/, 500);
  await client.rest.repos.createCommitStatus(status);
  assert.equal(github.requests.length, 2, 'retried once (after about a second)');

  github.respond('POST', /statuses/, 422);
  await assert.rejects(client.rest.repos.createCommitStatus(status), (error: { status?: number }) => error.status === 422);
  assert.equal(github.requests.length, 3, 'a 422 is final');
});

test("octokit's own log lines never carry the token", async (t) => {
  const github = await startGitHubServer(t);
  const log = captureLog();
  const client = createGitHubClient({ apiUrl: github.url, token: TOKEN, retries: 0, logger: log.logger });
  github.respond('POST', /statuses/, 401);
  await client.rest.repos.createCommitStatus(status).catch(() => {});
  await client.rest.repos.createCommitStatus(status);
  assert.ok(log.lines.length >= 2, 'something was logged');
  assert.doesNotMatch(log.text(), new RegExp(TOKEN));
});
