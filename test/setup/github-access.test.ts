import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createGitHubClient } from '../../src/util/github-client.js';
import { checkChecksAccess, checkStatusAccess } from '../../src/setup/github-access.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';

const REPO = /^\/repos\/octo\/app$/;
const STATUSES = /^\/repos\/octo\/app\/commits\/main\/statuses$/;
const repoBody = (push: boolean, isPrivate = true) => ({
  full_name: 'octo/app',
  private: isPrivate,
  default_branch: 'main',
  permissions: { admin: false, maintain: false, push, triage: push, pull: true },
});

async function check(github: GitHubServer, options: { deployments?: boolean } = {}) {
  const client = createGitHubClient({ apiUrl: github.url, token: 'ghp_test', retries: 0 });
  return checkStatusAccess(client, 'octo/app', { deployments: options.deployments ?? false, tokenFile: '/etc/duet/credentials/github-token' });
}

function onlyReads(github: GitHubServer): void {
  assert.deepEqual(
    github.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`),
    [],
    'doctor never writes to GitHub',
  );
}

test('a classic token: the scopes header and the repo permissions decide', async (t) => {
  const github = await startGitHubServer(t);
  const cases: Array<[string, boolean, boolean, RegExp]> = [
    ['repo, read:org', true, true, /classic token, scopes repo, read:org, write access to octo\/app/],
    ['repo:status', true, true, /scopes repo:status/],
    ['public_repo', true, false, /without the repo:status scope \(scopes: public_repo\)/],
    ['', true, false, /scopes: none/],
    ['repo', false, false, /no write access to octo\/app/],
  ];
  for (const [scopes, push, ok, detail] of cases) {
    github.respond('GET', REPO, { status: 200, body: repoBody(push), headers: { 'x-oauth-scopes': scopes } });
    const result = await check(github);
    assert.equal(result.ok, ok, `${scopes}: ${result.detail}`);
    assert.match(result.detail, detail);
    assert.equal(result.fix === '', ok, 'a fix exactly when failing');
  }
  github.respond('GET', REPO, { status: 200, body: repoBody(true), headers: { 'x-oauth-scopes': 'repo:status' } });
  const deployments = await check(github, { deployments: true });
  assert.equal(deployments.ok, false);
  assert.match(deployments.detail, /lacks repo_deployment/);
  assert.equal(github.matching(STATUSES).length, 0, 'classic tokens are judged by their scopes alone');
  onlyReads(github);
});

test('a fine-grained or App token: a read of the commit statuses shows whether the permission exists', async (t) => {
  const github = await startGitHubServer(t);
  github.respond('GET', REPO, { status: 200, body: repoBody(true) });
  github.respond('GET', STATUSES, { status: 403, body: { message: 'Resource not accessible by personal access token' } });
  const refused = await check(github);
  assert.equal(refused.ok, false);
  assert.match(refused.detail, /no "Commit statuses" permission/);
  assert.match(refused.fix, /Commit statuses: Read and write/);

  github.respond('GET', REPO, { status: 200, body: repoBody(true) });
  github.respond('GET', STATUSES, { status: 200, body: [] });
  const granted = await check(github);
  assert.equal(granted.ok, true, granted.detail);
  assert.match(granted.detail, /read or write cannot be told without writing/);
  onlyReads(github);
});

test('a bad token, an invisible repo and an unreachable API fail with their own reason', async (t) => {
  const github = await startGitHubServer(t);
  github.respond('GET', REPO, 401);
  assert.match((await check(github)).detail, /rejects the token \(401/);
  github.respond('GET', REPO, 404);
  const hidden = await check(github);
  assert.match(hidden.detail, /cannot see octo\/app \(404\)/);
  assert.match(hidden.fix, /Repository access/);
  github.respond('GET', REPO, 'reset');
  const down = await check(github);
  assert.equal(down.ok, false);
  assert.match(down.fix, /github\.api_url/);
  onlyReads(github);
});

test('wait_for_checks: doctor reads the check runs and the combined status of the default branch, and names the missing permission', async (t) => {
  const github = await startGitHubServer(t);
  const client = createGitHubClient({ apiUrl: github.url, token: 'ghs_test', retries: 0 });
  const tokenFile = '/etc/duet/credentials/github-token';
  github.respondAlways('GET', REPO, { status: 200, body: repoBody(true) });
  github.respond('GET', /^\/repos\/octo\/app\/commits\/main\/check-runs$/, { status: 200, body: { total_count: 2, check_runs: [] } });
  github.respond('GET', /^\/repos\/octo\/app\/commits\/main\/status$/, { status: 200, body: { state: 'success', statuses: [] } });
  const ok = await checkChecksAccess(client, 'octo/app', tokenFile);
  assert.deepEqual([ok.ok, ok.detail], [true, 'reads the check runs (2 on main) and the combined status of octo/app']);

  github.respond('GET', /^\/repos\/octo\/app\/commits\/main\/check-runs$/, 403);
  const refused = await checkChecksAccess(client, 'octo/app', tokenFile);
  assert.equal(refused.ok, false);
  assert.match(refused.detail, /may not read the check runs or statuses of octo\/app \(403/);
  assert.match(refused.fix, /"Checks: Read" and "Commit statuses: Read"/);

  github.respond('GET', /^\/repos\/octo\/app\/commits\/main\/check-runs$/, { status: 200, body: { total_count: 0, check_runs: [] } });
  github.respond('GET', /^\/repos\/octo\/app\/commits\/main\/status$/, 404);
  assert.equal((await checkChecksAccess(client, 'octo/app', tokenFile)).ok, false);
  onlyReads(github);
});
