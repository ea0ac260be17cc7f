import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pollUntil } from '../../src/util/poll.js';
import { getPublic } from '../support/duet.js';
import { createAppRepo, type AppRepo } from '../support/git-repo.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { examples, sign } from '../support/serve.js';
import { startContainer, type Container } from './container.js';
import { installRelease } from './release.js';

/** The apps the server suite deploys: test/fixtures/sample-app, its repository inside the machine. */

export interface AppOnMachine {
  name: string;
  mode: 'socket' | 'port';
  listen: number;
  ports: { blue: number; green: number };
  repo: AppRepo;
  /** The bare repository inside the machine, as the host sees it / as the machine sees it. */
  bareOnHost: string;
  bareInMachine: string;
}

/** The app's repository: a work tree on the host, its bare repository inside the machine. */
export async function appRepoInMachine(t: TestContext, machine: Container, name: string, mode: 'socket' | 'port'): Promise<AppOnMachine> {
  const repo = await createAppRepo(t);
  await repo.tag('v1');
  const bareInMachine = `/srv/git/${name}.git`;
  const bareOnHost = join(machine.root, bareInMachine);
  await mkdir(join(machine.root, 'srv', 'git'), { recursive: true });
  await repo.git(['clone', '--quiet', '--bare', repo.bareDir, bareOnHost]);
  // The repositories are root's and the duet user reads them: without this, git (since 2.35.2)
  // refuses with "fatal: detected dubious ownership in repository at '/srv/git/<app>.git'".
  await machine.run(['git', 'config', '--system', '--add', 'safe.directory', bareInMachine]);
  return { name, mode, listen: await freePort(), ports: { blue: await freePort(), green: await freePort() }, repo, bareOnHost, bareInMachine };
}

/** `sudo -u duet duet status <app> --json`, as the README runs it. */
export async function duetStatus(machine: Container, app: string): Promise<any> {
  return JSON.parse(await machine.run(['sudo', '-u', 'duet', 'duet', 'status', app, '--json']));
}

export async function journal(machine: Container, unit: string): Promise<string> {
  const result = await machine.exec(['journalctl', '-u', unit, '--no-pager', '-o', 'cat', '-n', '60']);
  return `--- journalctl -u ${unit} ---\n${result.stdout}${result.stderr}`;
}

/** GitHub's branch push example, pointed at our repository, branch and commit. */
export function branchPush(fullName: string, branch: string, sha: string): Record<string, unknown> {
  const example = examples('push').find((e) => String(e.ref).startsWith('refs/heads/') && !e.deleted);
  if (!example) throw new Error('no branch push example');
  example.ref = `refs/heads/${branch}`;
  example.after = sha;
  example.deleted = false;
  example.head_commit = { ...(example.head_commit ?? {}), id: sha };
  example.repository.full_name = fullName;
  return example;
}

/** A delivery as GitHub sends it, signed with the machine's webhook secret, to duet serve in the machine. */
export async function postWebhook(servePort: number, secret: string, event: string, payload: unknown): Promise<Response> {
  const body = JSON.stringify(payload);
  return fetch(`http://127.0.0.1:${servePort}/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': sign(body, secret),
      'user-agent': 'GitHub-Hookshot/server-suite',
    },
    body,
  });
}

/**
 * The steps of one machine's story: each a subtest, and once one fails the rest are skipped
 * (they build on it) instead of failing for its reason again.
 */
export function stepsOf(t: TestContext): (name: string, fn: (t: TestContext) => Promise<void>) => Promise<void> {
  let broken = false;
  return async (name, fn) => {
    await t.test(name, { skip: broken ? 'a step before failed' : false }, async (st) => {
      try {
        await fn(st);
      } catch (error) {
        broken = true;
        throw error;
      }
    });
  };
}

/** Whether duet serve in the machine answers /healthz. */
export async function healthz(port: number): Promise<boolean> {
  const answer = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  return answer?.ok ?? false;
}

/**
 * A booted machine with no failed unit, and the fake GitHub API beside it, answering doctor's
 * token check (it reads the repository) as for a classic token with the repo scope and push access.
 */
export async function bootedMachine(t: TestContext): Promise<{ github: GitHubServer; machine: Container }> {
  const github = await startGitHubServer(t);
  github.respondAlways('GET', /^\/repos\/[^/]+\/[^/]+$/, {
    status: 200,
    headers: { 'x-oauth-scopes': 'repo' },
    body: { private: true, default_branch: 'main', permissions: { admin: false, maintain: false, push: true, pull: true } },
  });
  const machine = await startContainer(t);
  const boot = await machine.boot();
  t.diagnostic(`boot: ${boot.ms} ms (${boot.state})`);
  assert.deepEqual(boot.failed, []);
  return { github, machine };
}

/**
 * README steps 1-3: duet as a release, duet.yml, `duet install`, the webhook secret and the GitHub
 * token as root-only credential files, `duet install` again (it loads the token then). Returns the
 * webhook secret.
 */
export async function installWithSecrets(machine: Container, config: string, githubToken: string): Promise<string> {
  await installRelease(machine);
  await mkdir(join(machine.root, 'etc', 'duet'), { recursive: true });
  await writeFile(join(machine.root, 'etc', 'duet', 'duet.yml'), config);
  await machine.run(['duet', 'install']);
  await machine.sh('umask 077; openssl rand -hex 32 > /etc/duet/credentials/webhook-secret');
  await machine.run(['sh', '-c', 'umask 077; cat > /etc/duet/credentials/github-token'], { input: `${githubToken}\n` });
  await machine.run(['duet', 'install']);
  return (await machine.run(['cat', '/etc/duet/credentials/webhook-secret'])).trim();
}

/** The commit statuses duet posted for `sha`, oldest first. */
export function statesOf(github: GitHubServer, app: string, sha: string): string[] {
  return github.matching(new RegExp(`^/repos/duet-tests/${app}/statuses/${sha}$`), 'POST').map((r) => (r.body as { state: string }).state);
}

/** Wait until a status for `sha` is no longer pending (duet serve's journal on a timeout); then all of them. */
export async function finalStates(github: GitHubServer, machine: Container, app: string, sha: string, timeoutMs = 180_000): Promise<string[]> {
  const path = `/repos/duet-tests/${app}/statuses/${sha}`;
  await github
    .waitFor((requests) => requests.some((r) => r.path === path && (r.body as { state?: string })?.state !== 'pending'), timeoutMs)
    .catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await journal(machine, 'duet')}`);
    });
  return statesOf(github, app, sha);
}

/** `systemctl restart duet.service`, then how long until /healthz answers (undefined: not in 30 s). */
export async function restartServe(machine: Container, port: number): Promise<number | undefined> {
  const started = Date.now();
  await machine.run(['systemctl', 'restart', 'duet.service']);
  return pollUntil(async () => ((await healthz(port)) ? Date.now() - started : undefined), { timeoutMs: 30_000, initialIntervalMs: 10 });
}

/** `sha` is live: duet status names it for the enabled color, and the public port answers from that color with it. */
export async function liveAt(machine: Container, app: AppOnMachine, sha: string): Promise<{ status: any; live: string }> {
  const status = await duetStatus(machine, app.name);
  const live = status.enabled as string;
  assert.equal(status.colors[live].revision, sha, `${app.name}: ${live} runs ${status.colors[live].revision}, not ${sha}`);
  const answer = await getPublic(app.listen);
  assert.equal(answer.status, 200);
  assert.match(answer.body, new RegExp(`color ${live} revision ${sha}`));
  return { status, live };
}
