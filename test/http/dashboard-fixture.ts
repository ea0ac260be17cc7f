import { createServer } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { pickApp } from '../../src/config/load.js';
import type { Color } from '../../src/config/schema.js';
import { writePidfile } from '../../src/instance/pidfile.js';
import { identify } from '../../src/instance/process-identity.js';
import { deployLogPath } from '../../src/pipeline/deploy-log.js';
import { appJournal } from '../../src/pipeline/app-journal.js';
import { newDeployId } from '../../src/pipeline/journal.js';
import { addTrigger, type Harness } from './http-harness.js';

/**
 * A machine state worth looking at, without nginx or real app processes: blue is live (the nginx
 * conf points at its port), both colors "run" (their pidfiles name this test process, which is
 * alive) and answer /health from small servers here, and there is a history of deploys plus one
 * in progress, holding the app's lock.
 */

export interface Scene {
  running: string;
  succeeded: string;
  failed: string;
}

const SHA_V2 = '3f9c1e7a5b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e';
const SHA_V1 = '9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b';

export async function buildScene(t: TestContext, h: Harness): Promise<Scene> {
  const app = pickApp(h.config, 'cafeteria');
  const me = await identify(process.pid);
  if (!me) throw new Error('cannot read /proc');
  for (const color of ['blue', 'green'] as Color[]) {
    const server = createServer((_req, res) => res.end('ok')).listen(h.ports[color], '127.0.0.1');
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  }
  const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000).toISOString();
  await writePidfile(app.paths.pidfile.blue, { ...me, color: 'blue', sha: SHA_V2, ref: 'refs/tags/v2.0.0', startedAt: hoursAgo(76) });
  await writePidfile(app.paths.pidfile.green, { ...me, color: 'green', sha: SHA_V1, ref: 'refs/tags/v1.9.3', startedAt: hoursAgo(98) });
  await mkdir(h.config.nginx.confDir, { recursive: true });
  await writeFile(join(h.config.nginx.confDir, 'duet-cafeteria.conf'), `upstream x {\n  server 127.0.0.1:${h.ports.blue};\n}\n`);

  const journal = appJournal(h.config, app.name);
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
  const failed = newDeployId(new Date(Date.now() - 3 * 3600_000));
  await journal.append({ type: 'begin', id: failed, at: at(180), kind: 'deploy', ref: 'v2.0.1', pid: 1 });
  await journal.append({ type: 'step', id: failed, at: at(180), step: 'health', status: 'started' });
  await journal.append({ type: 'step', id: failed, at: at(179), step: 'health', status: 'failed', ms: 60_000, detail: 'HTTP 500 from /health' });
  await journal.append({
    type: 'end',
    id: failed,
    at: at(179),
    outcome: 'failed',
    error: 'green never became healthy: HTTP 500 from /health',
    failedStep: 'health',
  });

  const succeeded = (
    await addTrigger(h, { ref: 'v2.0.0', state: 'running', source: 'release', requestedBy: 'release by octocat', startedAt: at(120), color: 'blue' })
  ).id;
  await journal.append({ type: 'begin', id: succeeded, at: at(120), kind: 'deploy', ref: 'v2.0.0', pid: 1 });
  await journal.append({ type: 'fact', id: succeeded, at: at(120), sha: SHA_V2, from: 'green', to: 'blue' });
  await journal.append({ type: 'end', id: succeeded, at: at(119.8), outcome: 'success' });
  await journal.append({ type: 'settled', id: succeeded, at: at(119.8), state: 'succeeded', summary: 'live on blue in 12.0s', color: 'blue' });

  const running = (await addTrigger(h, { ref: 'v2.1.0', state: 'running', source: 'push', requestedBy: 'push by octocat', startedAt: at(0.5), color: 'green' }))
    .id;
  await journal.append({ type: 'begin', id: running, at: at(0.5), kind: 'deploy', ref: 'v2.1.0', pid: process.pid });
  for (const [step, ms, detail] of [
    ['resolve', 420, 'refs/tags/v2.1.0 is 5e1d2c3'],
    ['pick', 3, 'green is idle'],
    ['update', 18_250, 'npm ci: 212 packages'],
  ] as const) {
    await journal.append({ type: 'step', id: running, at: at(0.4), step, status: 'started' });
    await journal.append({ type: 'step', id: running, at: at(0.3), step, status: 'done', ms, detail });
  }
  await journal.append({ type: 'step', id: running, at: at(0.1), step: 'start', status: 'started' });
  await mkdir(dirname(app.paths.lock), { recursive: true });
  await writeFile(app.paths.lock, JSON.stringify({ ...me, command: 'serve', since: at(0.5) }));
  const log = deployLogPath(app, running);
  await mkdir(dirname(log), { recursive: true });
  await writeFile(
    log,
    `deploy ${running} of cafeteria (ref v2.1.0)\nstep resolve: refs/tags/v2.1.0\nstep update: npm ci\nadded 212 packages in 17s\nstep start: green on port ${h.ports.green}\n`,
  );
  await addTrigger(h, { ref: 'main', state: 'queued', source: 'push', requestedBy: 'push by hubot' });
  return { running, succeeded, failed };
}
