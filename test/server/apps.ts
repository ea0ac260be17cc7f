import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createAppRepo, type AppRepo } from '../support/git-repo.js';
import { freePort } from '../support/ports.js';
import { examples, sign } from '../support/serve.js';
import type { Container } from './container.js';

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
