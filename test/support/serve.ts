import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { pollUntil } from '../../src/util/poll.js';
import { cliPath } from './duet.js';

export const WEBHOOK_SECRET = "It's a Secret to Everybody";
export const API_TOKEN = 'test-api-token-0123456789';

/** A real `duet serve` child process; stopped (or killed) when the test ends. */
export interface ServeProcess {
  url: string;
  child: ResultPromise;
  /** kill -9: what a crash or a power cut does to duet. */
  crash(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/** `nodeFlags`: node's own options before the script, e.g. SERVE_NODE_FLAGS as the units run it. */
export async function startServe(
  t: TestContext,
  configPath: string,
  port: number,
  env: Record<string, string> = {},
  nodeFlags: readonly string[] = [],
): Promise<ServeProcess> {
  let output = '';
  const child = execa('node', [...nodeFlags, cliPath(), '--config', configPath, 'serve'], {
    reject: false,
    stdin: 'ignore',
    all: true,
    env: { DUET_WEBHOOK_SECRET: WEBHOOK_SECRET, DUET_API_TOKEN: API_TOKEN, ...env },
    extendEnv: true,
  });
  child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stopped = child.then(() => undefined);
  t.after(async () => {
    child.kill('SIGKILL');
    await stopped;
  });
  const url = `http://127.0.0.1:${port}`;
  const up = await pollUntil(async () => ((await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined), { timeoutMs: 15_000 });
  if (!up) throw new Error(`duet serve did not come up:\n${output}`);
  return {
    url,
    child,
    async crash() {
      child.kill('SIGKILL');
      await stopped;
    },
    async stop() {
      child.kill('SIGTERM');
      // It lets a running deploy finish first; one that ignores SIGTERM fails here, saying so.
      const cancel = new AbortController();
      const exited = await Promise.race([stopped.then(() => true), sleep(60_000, false, { signal: cancel.signal }).catch(() => false)]);
      cancel.abort();
      if (!exited) {
        child.kill('SIGKILL');
        await stopped;
        throw new Error(`duet serve did not exit within 60 s of SIGTERM:\n${output}`);
      }
    },
    output: () => output,
  };
}

/** Sign like GitHub: HMAC-SHA256 of the exact body bytes, hex, prefixed. */
export function sign(body: string, secret = WEBHOOK_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export async function postWebhook(url: string, event: string, payload: unknown, deliveryId: string): Promise<Response> {
  const body = JSON.stringify(payload);
  return fetch(`${url}/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': deliveryId,
      'x-hub-signature-256': sign(body),
      'user-agent': 'GitHub-Hookshot/test',
    },
    body,
  });
}

interface ExampleGroup {
  name: string;
  examples: Array<Record<string, unknown>>;
}

/** GitHub's own example payloads (@octokit/webhooks-examples), deep-copied. */
export function examples(event: string): Array<Record<string, any>> {
  const require = createRequire(import.meta.url);
  const groups = require('@octokit/webhooks-examples/api.github.com/index.json') as ExampleGroup[];
  const group = groups.find((g) => g.name === event);
  if (!group) throw new Error(`no examples for ${event}`);
  return group.examples.map((e) => structuredClone(e));
}

/** The push example for a created tag, pointed at our repository, tag and commit. */
export function tagPush(fullName: string, tag: string, sha: string): Record<string, any> {
  const example = examples('push').find((e) => String(e.ref).startsWith('refs/tags/') && e.created === true && !e.deleted);
  if (!example) throw new Error('no tag push example');
  example.ref = `refs/tags/${tag}`;
  example.after = sha;
  example.head_commit = { ...(example.head_commit ?? {}), id: sha };
  example.repository.full_name = fullName;
  return example;
}

export async function getJson(url: string, token = API_TOKEN): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: await response.json().catch(() => undefined) };
}
