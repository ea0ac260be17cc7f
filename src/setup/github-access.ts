import type { Octokit } from '@octokit/rest';

/**
 * Whether a token may write commit statuses on a repository, found out by reading only -- doctor
 * must never leave a status (or anything else) behind.
 *
 * - `GET /repos/{owner}/{repo}` proves the token is valid (else 401) and sees the repo (else 404).
 * - Classic personal access tokens and OAuth tokens answer with an `X-OAuth-Scopes` header: a
 *   status needs the `repo:status` (or `repo`) scope, a deployment `repo_deployment` (or
 *   `repo`), and the user behind the token needs push access (`permissions.push`).
 * - Fine-grained tokens and GitHub App tokens have no scopes header, and GitHub offers no
 *   endpoint where a token reads its own permissions. The closest read is listing the commit
 *   statuses of the default branch: without any "Commit statuses" permission that is refused on
 *   a private repository. Read versus write cannot be told apart without writing, so the
 *   detail says so; on a public repository the read is open to everyone and proves nothing.
 */
interface AccessResult {
  ok: boolean;
  detail: string;
  fix: string;
}

interface HttpError {
  status?: number;
  message?: string;
}

export async function checkStatusAccess(client: Octokit, fullName: string, options: { deployments: boolean; tokenFile: string }): Promise<AccessResult> {
  const [owner, repo] = fullName.split('/') as [string, string];
  let response: Awaited<ReturnType<Octokit['rest']['repos']['get']>>;
  try {
    response = await client.rest.repos.get({ owner, repo });
  } catch (error) {
    return refused(error as HttpError, fullName, options.tokenFile);
  }
  const permissions = response.data.permissions;
  const canPush = permissions === undefined || permissions.push || permissions.maintain || permissions.admin;
  const writeFix = `give the token's user write access to ${fullName} (Settings -> Collaborators and teams)`;
  const scopesHeader = response.headers['x-oauth-scopes'];

  if (typeof scopesHeader === 'string') {
    const scopes = scopesHeader
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const listed = scopes.length ? scopes.join(', ') : 'none';
    if (!scopes.includes('repo') && !scopes.includes('repo:status')) {
      return {
        ok: false,
        detail: `classic token without the repo:status scope (scopes: ${listed})`,
        fix: 'create a token with the repo:status scope (or repo for private repositories)',
      };
    }
    if (options.deployments && !scopes.includes('repo') && !scopes.includes('repo_deployment')) {
      return {
        ok: false,
        detail: `github.deployments is on, but the token lacks repo_deployment (scopes: ${listed})`,
        fix: 'add the repo_deployment scope to the token',
      };
    }
    if (!canPush) return { ok: false, detail: `the token's user has no write access to ${fullName}`, fix: writeFix };
    return { ok: true, detail: `classic token, scopes ${listed}, write access to ${fullName}`, fix: '' };
  }

  if (!canPush) return { ok: false, detail: `the token's user has no write access to ${fullName}`, fix: writeFix };
  try {
    await client.rest.repos.listCommitStatusesForRef({ owner, repo, ref: response.data.default_branch || 'HEAD', per_page: 1 });
  } catch (error) {
    const status = (error as HttpError).status;
    if (status === 403 || status === 404) {
      return {
        ok: false,
        detail: `the token may not read the commit statuses of ${fullName} (${status}): it has no "Commit statuses" permission`,
        fix: `grant the token "Commit statuses: Read and write" on ${fullName}${options.deployments ? ' (and "Deployments: Read and write")' : ''}`,
      };
    }
    return refused(error as HttpError, fullName, options.tokenFile);
  }
  const visibility = response.data.private ? 'private' : 'public: reading statuses proves nothing there';
  return {
    ok: true,
    detail: `fine-grained or App token: sees ${fullName} (${visibility}); "Commit statuses" is granted, read or write cannot be told without writing`,
    fix: '',
  };
}

/**
 * deploy_on.wait_for_checks reads a commit's check runs and its combined status: asked of the
 * default branch's tip, as duet serve will ask of a pushed commit.
 */
export async function checkChecksAccess(client: Octokit, fullName: string, tokenFile: string): Promise<AccessResult> {
  const [owner, repo] = fullName.split('/') as [string, string];
  try {
    const ref = (await client.rest.repos.get({ owner, repo })).data.default_branch || 'HEAD';
    const runs = await client.rest.checks.listForRef({ owner, repo, ref, per_page: 1 });
    await client.rest.repos.getCombinedStatusForRef({ owner, repo, ref, per_page: 1 });
    return { ok: true, detail: `reads the check runs (${runs.data.total_count} on ${ref}) and the combined status of ${fullName}`, fix: '' };
  } catch (error) {
    const status = (error as HttpError).status;
    if (status === 403 || status === 404) {
      return {
        ok: false,
        detail: `wait_for_checks: the token may not read the check runs or statuses of ${fullName} (${status}: ${(error as HttpError).message ?? ''})`,
        fix: `grant the token "Checks: Read" and "Commit statuses: Read" on ${fullName} (classic tokens: the repo scope)`,
      };
    }
    return refused(error as HttpError, fullName, tokenFile);
  }
}

function refused(error: HttpError, fullName: string, tokenFile: string): AccessResult {
  switch (error.status) {
    case 401:
      return { ok: false, detail: 'GitHub rejects the token (401 Bad credentials)', fix: `create a new token and put it in ${tokenFile}` };
    case 403:
      return {
        ok: false,
        detail: `GitHub refused (403: ${error.message ?? 'forbidden'})`,
        fix: 'a rate limit or an organization policy (SSO authorization) blocks the token; authorize it for the organization',
      };
    case 404:
      return {
        ok: false,
        detail: `the token cannot see ${fullName} (404)`,
        fix: `check apps.<name>.repo; give the token access to ${fullName} (fine-grained: "Repository access")`,
      };
    default:
      return { ok: false, detail: `GitHub did not answer: ${error.message}`, fix: 'check github.api_url and the network' };
  }
}
