import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import type { ClosedOptions, LoadKind, RequestRecord } from './closed-load.js';

/** The closed-loop load generator's thread (see closed-load.ts): loads until told to stop. */

const now = (): number => performance.timeOrigin + performance.now();
const one = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

const options = workerData as ClosedOptions;
const records: RequestRecord[] = [];
let running = true;

function send(kind: LoadKind, agent: Agent | false): Promise<void> {
  const sentAt = now();
  return new Promise((resolve) => {
    let finished = false;
    const finish = (status: number, headers: IncomingHttpHeaders | undefined, error?: string): void => {
      if (finished) return;
      finished = true;
      records.push({
        kind,
        sentAt,
        endedAt: now(),
        status,
        ...(error ? { error } : {}),
        ...(headers ? { version: one(headers['x-app-version']), color: one(headers['x-duet-color']), upstream: one(headers['x-duet-upstream']) } : {}),
      });
      resolve();
    };
    const req = request(
      {
        host: '127.0.0.1',
        port: options.port,
        path: '/',
        agent,
        headers: kind === 'close' ? { connection: 'close' } : {},
        timeout: options.timeoutMs ?? 2000,
      },
      (res) => {
        res.resume();
        res.on('end', () => finish(res.statusCode ?? 0, res.headers));
        // A body cut off after the status line: the client did not get its page.
        res.on('error', (error) => finish(0, undefined, error.message));
        res.on('aborted', () => finish(0, undefined, 'aborted'));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => finish(0, undefined, (error as NodeJS.ErrnoException).code ?? error.message));
    req.end();
  });
}

/** One client: a request, its answer, the next request, until stopped. */
async function client(kind: LoadKind, agent: Agent | false): Promise<void> {
  while (running) {
    await send(kind, agent);
    // A refused connection fails at once: yield, so a dead port does not starve the others.
    if (records.at(-1)!.status === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

const agents = new Map<LoadKind, Agent | false>(
  options.kinds.map((kind) => [kind, kind === 'keep-alive' ? new Agent({ keepAlive: true, maxSockets: options.connections }) : false]),
);
const clients = options.kinds.flatMap((kind) => Array.from({ length: options.connections }, () => client(kind, agents.get(kind)!)));
parentPort!.once('message', () => {
  running = false;
});
parentPort!.postMessage({ started: true });
await Promise.all(clients);
for (const agent of agents.values()) if (agent) agent.destroy();
parentPort!.postMessage({ records });
