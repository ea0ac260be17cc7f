import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import express from 'express';
import { pino } from 'pino';
import { parseConfig, type Config } from '../../src/config/load.js';
import { appJournal } from '../../src/pipeline/app-journal.js';
import { blank, type Deploy } from '../../src/pipeline/deploy-state.js';
import { newDeployId } from '../../src/pipeline/journal.js';
import type { SubmitResult, TriggerQueue, TriggerRequest } from '../../src/pipeline/trigger.js';
import { apiRouter, jsonNotFound } from '../../src/http/api.js';
import { dashboardRouter } from '../../src/http/dashboard.js';
import { Metrics } from '../../src/http/metrics.js';
import type { SignInLimiter } from '../../src/http/sign-in-guard.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

/**
 * A real express server with the API and the dashboard on a loopback port, over a queue that only
 * records what it is asked (the real queue is tested end to end elsewhere).
 */

export class RecordingQueue implements TriggerQueue {
  readonly submitted: TriggerRequest[] = [];
  readonly records = new Map<string, Deploy>();

  async submit(request: TriggerRequest): Promise<SubmitResult> {
    this.submitted.push(request);
    const record = trigger({ ...request });
    this.records.set(record.id, record);
    return { id: record.id, created: true };
  }

  depth(app?: string): number {
    return [...this.records.values()].filter((r) => r.state === 'queued' && (!app || r.app === app)).length;
  }

  add(fields: Partial<Deploy>): Deploy {
    const record = trigger(fields);
    this.records.set(record.id, record);
    return record;
  }
}

export function trigger(fields: Partial<Deploy>): Deploy {
  const id = fields.id ?? newDeployId();
  return {
    ...blank(id, fields.app ?? 'cafeteria', 'deploy'),
    source: 'manual',
    requestedBy: 'API',
    receivedAt: new Date().toISOString(),
    ...fields,
  };
}

/**
 * A trigger in its app's journal as duet serve's queue writes it: accepted, then moved on to
 * `fields.state` (dequeued, superseded, settled) at the times `fields` gives.
 */
export async function addTrigger(h: Harness, fields: Partial<Deploy>): Promise<Deploy> {
  const record = h.queue.add(fields);
  const { id, app, receivedAt } = record;
  const journal = appJournal(h.config, app);
  const at = receivedAt ?? new Date().toISOString();
  const accepted = { ...trigger({ ...record, state: 'queued', summary: null, supersededBy: null, startedAt: null, finishedAt: null, color: null }) };
  await journal.append({ type: 'accepted', id, at, trigger: accepted });
  if (record.state === 'superseded') {
    await journal.append({ type: 'superseded', id, at, by: record.supersededBy ?? newDeployId(), summary: record.summary ?? 'Superseded' });
  } else if (record.state !== 'queued') {
    await journal.append({ type: 'dequeued', id, at: record.startedAt ?? at });
    // The run names the color it picked.
    if (record.color) await journal.append({ type: 'fact', id, at: record.startedAt ?? at, to: record.color });
  }
  if (record.state === 'succeeded' || record.state === 'failed' || record.state === 'errored') {
    const color = record.color ? { color: record.color } : {};
    await journal.append({ type: 'settled', id, at: record.finishedAt ?? at, state: record.state, summary: record.summary ?? record.state, ...color });
  }
  return (await journal.deploy(id))!;
}

/** Every id the HTTP side looked a deploy up by, in the apps' journals: proves a bad id never got that far. */
function recordLookups(config: Config): string[] {
  const lookedUp: string[] = [];
  for (const name of config.apps.keys()) {
    const journal = appJournal(config, name);
    const deploy = journal.deploy.bind(journal);
    journal.deploy = (id: string) => {
      lookedUp.push(id);
      return deploy(id);
    };
  }
  return lookedUp;
}

export interface Harness {
  base: string;
  port: number;
  config: Config;
  queue: RecordingQueue;
  /** Every id looked up in the apps' journals. */
  lookedUp: string[];
  metrics: Metrics;
  stateDir: string;
  ports: { blue: number; green: number; listen: number };
}

export interface HarnessOptions {
  token?: string | undefined;
  publicDashboard?: boolean;
  publicUrl?: string;
  /** The dashboard's sign-in limiter: one on a clock of the test's. */
  signInLimiter?: SignInLimiter;
}

export const TOKEN = 'test-token-4f1c2b9e8d7a6c5b';

export async function startHarness(t: TestContext, options: HarnessOptions = {}): Promise<Harness> {
  const dir = await tempDir(t, 'duet-webhook');
  const stateDir = join(dir, 'state');
  const ports = { blue: await freePort(), green: await freePort(), listen: await freePort() };
  const [menuBlue, menuGreen, menuListen] = [await freePort(), await freePort(), await freePort()];
  const yaml = [
    `state_dir: ${stateDir}`,
    'nginx: { managed: true }',
    `server: { public_dashboard: ${options.publicDashboard ?? false}${options.publicUrl ? `, public_url: "${options.publicUrl}"` : ''} }`,
    'apps:',
    '  cafeteria:',
    '    clone_url: /nonexistent/cafeteria.git',
    `    listen: "127.0.0.1:${ports.listen}"`,
    `    ports: { blue: ${ports.blue}, green: ${ports.green} }`,
    '  menu:',
    '    clone_url: /nonexistent/menu.git',
    `    listen: "127.0.0.1:${menuListen}"`,
    `    ports: { blue: ${menuBlue}, green: ${menuGreen} }`,
  ].join('\n');
  const config = parseConfig(yaml, join(dir, 'duet.yml'));
  const queue = new RecordingQueue();
  const lookedUp = recordLookups(config);
  const metrics = new Metrics(config, queue);
  const logger = pino({ level: 'silent' });
  const token = 'token' in options ? options.token : TOKEN;

  const app = express();
  app.set('trust proxy', 'loopback'); // as createServerApp: X-Forwarded-For from nginx names the client
  // The dashboard first: it answers browsers at /deploys/<id> and passes API clients on.
  app.use(dashboardRouter({ config, queue, token, logger, signInLimiter: options.signInLimiter }));
  app.use(apiRouter({ config, queue, token, logger, metrics, logPollMs: 50 }));
  app.use(jsonNotFound);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const port = (server.address() as AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { base: `http://127.0.0.1:${port}`, port, config, queue, lookedUp, metrics, stateDir, ports };
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request with the path sent exactly as written: fetch() would resolve `..` before sending. */
export function rawGet(port: number, path: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export const bearer = (token = TOKEN): Record<string, string> => ({ authorization: `Bearer ${token}` });

/**
 * Reads a streaming answer into `seen.text` until `until` matches what arrived, or with 'end'
 * until the server ends it. A stream that ends first, or is not there within `timeoutMs`, fails
 * with what it sent.
 */
export async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  seen: { text: string },
  until: RegExp | 'end',
  timeoutMs = 10_000,
): Promise<void> {
  const decoder = new TextDecoder();
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    void reader.cancel();
  }, timeoutMs);
  try {
    while (until === 'end' || !until.test(seen.text)) {
      const { value, done } = await reader.read();
      if (late)
        throw new Error(`waited ${timeoutMs} ms for ${until === 'end' ? 'the end of the stream' : String(until)}; it sent: ${JSON.stringify(seen.text)}`);
      if (done && until === 'end') return;
      if (done) throw new Error(`the stream ended before ${String(until)}; it sent: ${JSON.stringify(seen.text)}`);
      seen.text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
}
