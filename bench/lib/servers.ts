import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { SERVE_NODE_FLAGS } from '../../src/setup/layout.js';
import { cliPath } from '../../test/support/duet.js';
import { API_TOKEN, WEBHOOK_SECRET } from '../../test/support/serve.js';
import { track, type Scope } from './cleanup.js';
import { log } from './log.js';
import { isAlive, waitForExit } from './proc.js';

/** The two webhook receivers: `duet serve`, and `webhook` (adnanh/webhook, Debian's package). */

export interface Server {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

async function waitForHttp(url: string, timeoutMs: number, alive: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && alive()) {
    const answer = await fetch(url).catch(() => undefined);
    if (answer) {
      await answer.arrayBuffer().catch(() => {});
      return true;
    }
    await sleep(25);
  }
  return false;
}

/**
 * The server's output goes through a pipe, which the benchmark copies to `logPath`, as the unit
 * gives it to journald. Written straight to a file on the disk duet syncs, each log line was a
 * synchronous append on duet's event loop competing with its own syncs (0.3-0.4 ms a line in a
 * CPU profile), a cost no installed duet has.
 */
async function startProcess(
  scope: Scope,
  name: string,
  file: string,
  args: string[],
  env: Record<string, string>,
  logPath: string,
  readyUrl: string,
  port: number,
): Promise<Server> {
  const out = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  // 'close' (the pipes drained), not just 'exit', ends the copy; not waited for, in case a child
  // of the server still holds a pipe open.
  child.once('close', () => out.end());
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  track(child, exited);
  const pid = child.pid!;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    child.kill('SIGTERM');
    if (!(await waitForExit(pid, 10_000))) child.kill('SIGKILL');
    await exited;
  };
  scope.first(stop);
  if (!(await waitForHttp(readyUrl, 20_000, () => isAlive(pid)))) {
    const tail = existsSync(logPath) ? (await readFile(logPath, 'utf8')).slice(-2000) : '';
    throw new Error(`${name} did not come up:\n${tail}`);
  }
  return { pid, port, stop };
}

export async function startDuetServe(scope: Scope, configPath: string, port: number, logPath: string): Promise<Server> {
  return startProcess(
    scope,
    'duet serve',
    'node',
    // As the installed unit runs it (src/setup/layout.ts).
    [...SERVE_NODE_FLAGS, cliPath(), '--config', configPath, 'serve'],
    { DUET_WEBHOOK_SECRET: WEBHOOK_SECRET, DUET_API_TOKEN: API_TOKEN },
    logPath,
    `http://127.0.0.1:${port}/healthz`,
    port,
  );
}

/**
 * Whether `webhook` is installed; installs Debian's package with apt-get when it is not (sudo when
 * not root). Returns a note saying why not when that fails.
 */
export async function ensureWebhookTool(): Promise<{ ok: true; version: string } | { ok: false; note: string }> {
  const version = async (): Promise<string | undefined> => {
    const result = await execa('webhook', ['-version'], { reject: false, stdin: 'ignore' });
    return result.exitCode === 0 ? String(result.stdout).trim() : undefined;
  };
  const present = await version();
  if (present) return { ok: true, version: present };
  log('  `webhook` is not installed: apt-get install -y webhook');
  const root = process.getuid?.() === 0;
  const [file, ...args] = root ? ['apt-get', 'install', '-y', 'webhook'] : ['sudo', '-n', 'apt-get', 'install', '-y', 'webhook'];
  const install = await execa(file, args, {
    reject: false,
    stdin: 'ignore',
    all: true,
    env: { DEBIAN_FRONTEND: 'noninteractive' },
    extendEnv: true,
    timeout: 180_000,
  });
  const after = await version();
  if (after) return { ok: true, version: after };
  const tail = String(install.all ?? '')
    .trim()
    .split('\n')
    .slice(-3)
    .join(' / ');
  return { ok: false, note: `webhook (adnanh) could not be installed with apt-get (exit ${install.exitCode}): ${tail || 'no output'}` };
}

/**
 * adnanh/webhook with one hook that checks what duet checks of a push: the HMAC-SHA256 signature
 * over the body (X-Hub-Signature-256) and the branch, then runs a trivial command (/bin/true).
 * A mismatch answers 401 (its default would be 200), so only verified deliveries count as acks.
 */
export async function startWebhookTool(scope: Scope, dir: string, port: number): Promise<Server> {
  const hooks = join(dir, 'hooks.json');
  await writeFile(
    hooks,
    JSON.stringify(
      [
        {
          id: 'deploy',
          'execute-command': '/bin/true',
          'command-working-directory': dir,
          'response-message': 'queued',
          'trigger-rule-mismatch-http-response-code': 401,
          'trigger-rule': {
            and: [
              { match: { type: 'payload-hmac-sha256', secret: WEBHOOK_SECRET, parameter: { source: 'header', name: 'X-Hub-Signature-256' } } },
              { match: { type: 'value', value: 'refs/heads/main', parameter: { source: 'payload', name: 'ref' } } },
            ],
          },
        },
      ],
      null,
      2,
    ),
  );
  return startProcess(
    scope,
    'webhook',
    'webhook',
    ['-hooks', hooks, '-ip', '127.0.0.1', '-port', String(port), '-nopanic'],
    {},
    join(dir, 'webhook.log'),
    `http://127.0.0.1:${port}/`,
    port,
  );
}

/** The intake floor (floor-server.ts): node's HTTP server and one durable append per request. */
export async function startFloorServer(scope: Scope, dir: string, port: number): Promise<Server> {
  const script = fileURLToPath(new URL('./floor-server.js', import.meta.url));
  // With duet serve's node flags, so that the two differ only in what runs on them.
  return startProcess(
    scope,
    'floor server',
    'node',
    [...SERVE_NODE_FLAGS, script, String(port), join(dir, 'floor.ndjson')],
    {},
    join(dir, 'floor.log'),
    `http://127.0.0.1:${port}/`,
    port,
  );
}
