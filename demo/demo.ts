/**
 * `npm run demo`: duet's zero-downtime deploy, shown on this machine in well under a minute.
 *
 * Everything happens in a temp dir: a bare git repository stands in for GitHub (the app in
 * demo/app, tagged v1 and v2), duet runs its own nginx on free loopback ports, v1 is deployed,
 * then v2 is deployed while 8 keep-alive clients hammer the public port -- and not one request
 * fails. Then a rollback, and `duet down` plus removal of the temp dir, whatever happened.
 *
 * DUET_DEMO_SWITCH=port runs the demo in port mode (nginx reload) instead of socket mode
 * (symlink rename); the load clients then use Connection: close, since a reload closes idle
 * keep-alive connections under a client's feet.
 */
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { describeError } from '../src/errors.js';
import { loadConfig } from '../src/config/load.js';
import { runnerOf } from '../src/instance/runner.js';
import { stopManagedNginx } from '../src/switch/managed-nginx.js';

const CLIENTS = 8;
const LOAD_AFTER_DEPLOY_MS = 1000;
const switchMode: 'socket' | 'port' = process.env.DUET_DEMO_SWITCH === 'port' ? 'port' : 'socket';
const keepAlive = switchMode === 'socket';

// ---------------------------------------------------------------------------------------------
// Output

const tty = process.stdout.isTTY === true;
const paint = (code: string) => (text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
let currentSection = '';
const section = (title: string): void => {
  currentSection = title;
  say(`\n${bold(`==> ${title}`)}`);
};
const indent = (text: string, prefix = '    '): string =>
  text
    .trimEnd()
    .split('\n')
    .map((line) => `${prefix}${line}`)
    .join('\n');

/** A failure the demo explains itself: `what` is the headline, `details` what to look at. */
class DemoFailure extends Error {
  constructor(
    message: string,
    readonly details: string[] = [],
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Places

function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'demo', 'app'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the duet project root above the demo');
    dir = parent;
  }
  return dir;
}

const root = projectRoot();
const cliPath = join(root, 'dist', 'bin', 'duet.mjs');
const appSource = join(root, 'demo', 'app');

/** A TCP port that was free a moment ago: listen on port 0, read the port, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port from the kernel'))));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Child processes: git and duet

let current: ResultPromise | undefined;

const gitEnv = { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
const gitIdentity = ['-c', 'user.name=duet demo', '-c', 'user.email=demo@duet.invalid', '-c', 'commit.gpgsign=false', '-c', 'tag.gpgsign=false'];

async function git(cwd: string, args: string[]): Promise<string> {
  const result = await execa('git', [...gitIdentity, ...args], { cwd, env: gitEnv, stdin: 'ignore', all: true, reject: false });
  if (result.failed) throw new DemoFailure(`git ${args.join(' ')} failed`, [result.all ?? result.message]);
  return result.stdout.trim();
}

interface DuetRun {
  code: number;
  stdout: string;
  ms: number;
}

/**
 * Run the real `duet` CLI. `show`: its stdout goes to the terminal too, and its stderr (the
 * deploy progress) always does. `detached`: in its own process group, so a Ctrl-C at the
 * terminal does not interrupt it (used for the clean-up).
 */
async function duet(configPath: string, args: string[], options: { show?: boolean; detached?: boolean } = {}): Promise<DuetRun> {
  const started = Date.now();
  const child = execa('node', [cliPath, '--config', configPath, ...args], {
    stdin: 'ignore',
    stdout: options.show === false ? 'pipe' : ['pipe', 'inherit'],
    stderr: 'inherit',
    reject: false,
    detached: options.detached ?? false,
    timeout: 120_000,
  });
  current = child;
  try {
    const result = await child;
    return { code: result.exitCode ?? 1, stdout: String(result.stdout ?? ''), ms: Date.now() - started };
  } finally {
    current = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP through the public port

interface Answer {
  status: number;
  version: string | undefined;
  title: string;
}

function versionOf(header: string | string[] | undefined, body: string): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value ?? /Cafeteria menu — (v\d+)/.exec(body)?.[1];
}

function getPage(port: number, agent: Agent | false, timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = agent === false || !keepAlive ? { connection: 'close' } : {};
    const req = request({ host: '127.0.0.1', port, path: '/', agent, headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          version: versionOf(res.headers['x-app-version'], body),
          title: /<h1>(.*?)<\/h1>/.exec(body)?.[1] ?? body.trim().split('\n')[0] ?? '',
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function showPage(port: number, expected: string): Promise<void> {
  let answer: Answer;
  try {
    answer = await getPage(port, false);
  } catch (error) {
    throw new DemoFailure(`GET http://127.0.0.1:${port}/ failed: ${(error as Error).message}`);
  }
  say(`    GET http://127.0.0.1:${port}/  ->  ${answer.status}  ${bold(answer.title)}`);
  if (answer.status !== 200 || answer.version !== expected) {
    throw new DemoFailure(`the public page should be ${expected} with status 200; got ${answer.version ?? 'no version'} with ${answer.status}`);
  }
}

interface LoadStats {
  sent: number;
  ok: number;
  non2xx: number;
  errors: number;
  byVersion: Map<string, number>;
  problems: Map<string, number>;
  startedAt: number;
  stoppedAt: number;
}

interface Load {
  stats: LoadStats;
  stop(): Promise<LoadStats>;
}

/** CLIENTS loops, each sending its next GET as soon as the previous one is answered. */
function startLoad(port: number): Load {
  const agent = new Agent({ keepAlive, maxSockets: CLIENTS });
  const stats: LoadStats = {
    sent: 0,
    ok: 0,
    non2xx: 0,
    errors: 0,
    byVersion: new Map(),
    problems: new Map(),
    startedAt: Date.now(),
    stoppedAt: 0,
  };
  const problem = (what: string): void => void stats.problems.set(what, (stats.problems.get(what) ?? 0) + 1);
  let running = true;

  const client = async (): Promise<void> => {
    while (running) {
      stats.sent += 1;
      try {
        const answer = await getPage(port, agent);
        if (answer.status >= 200 && answer.status < 300) stats.ok += 1;
        else {
          stats.non2xx += 1;
          problem(`HTTP ${answer.status}`);
        }
        const version = answer.version ?? 'unknown';
        stats.byVersion.set(version, (stats.byVersion.get(version) ?? 0) + 1);
      } catch (error) {
        stats.errors += 1;
        problem((error as NodeJS.ErrnoException).code ?? (error as Error).message);
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, () => client());

  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(clients);
      stats.stoppedAt = Date.now();
      agent.destroy();
      return stats;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The demo

interface Setup {
  dir: string;
  configPath?: string;
  errorLog?: string;
}

const setup: Setup = { dir: '' };
let load: Load | undefined;
let interrupted = false;

async function tail(path: string | undefined, lines = 5): Promise<string[]> {
  if (!path || !existsSync(path)) return [];
  const text = (await readFile(path, 'utf8')).trimEnd();
  return text ? text.split('\n').slice(-lines) : [];
}

async function deployFailure(what: string): Promise<DemoFailure> {
  const nginxLog = (await tail(setup.errorLog, 2)).map((line) => (line.length > 240 ? `${line.slice(0, 240)}…` : line));
  const details = nginxLog.length ? [`last lines of ${setup.errorLog}:`, ...nginxLog] : [];
  if (nginxLog.some((line) => /Permission denied/.test(line) && /\.sock/.test(line))) {
    details.push("nginx's worker (user nobody) may not connect to the app's socket: the socket is not yet made reachable for it");
  }
  return new DemoFailure(what, details);
}

function checkInterrupted(): void {
  if (interrupted) throw new DemoFailure(`interrupted during "${currentSection}"`);
}

async function run(): Promise<void> {
  const demoStarted = Date.now();
  say(bold(`duet demo: a zero-downtime blue/green deploy (switch: ${switchMode})`));
  if (!existsSync(cliPath)) throw new DemoFailure(`${cliPath} is missing`, ['build first: npm run build (npm run demo does)']);

  section('Creating a scratch directory');
  setup.dir = await mkdtemp(join(tmpdir(), 'duet-demo-'));
  // nginx's workers run as nobody when started as root, and must pass through to the sockets.
  await chmod(setup.dir, 0o755);
  say(`    ${setup.dir}`);

  section("Creating the app's git repository (a local stand-in for GitHub)");
  const bareDir = join(setup.dir, 'cafeteria.git');
  const workDir = join(setup.dir, 'cafeteria-src');
  await git(setup.dir, ['init', '--quiet', '--bare', '--initial-branch=main', bareDir]);
  await cp(appSource, workDir, { recursive: true });
  await git(workDir, ['init', '--quiet', '--initial-branch=main']);
  await git(workDir, ['add', '--all']);
  await git(workDir, ['commit', '--quiet', '--no-verify', '-m', 'Cafeteria menu v1']);
  await git(workDir, ['tag', 'v1']);
  await writeFile(join(workDir, 'VERSION'), 'v2\n');
  await git(workDir, ['commit', '--quiet', '--no-verify', '--all', '-m', 'Cafeteria menu v2']);
  await git(workDir, ['tag', 'v2']);
  await git(workDir, ['push', '--quiet', bareDir, 'main', '--tags']);
  const cloneUrl = pathToFileURL(bareDir).href;
  for (const tag of ['v1', 'v2']) say(`    ${tag}  ${await git(bareDir, ['rev-parse', '--short', `${tag}^{commit}`])}  VERSION=${tag}`);
  say(`    clone_url: ${cloneUrl}`);

  section('Writing duet.yml');
  const [publicPort, bluePort, greenPort] = [await freePort(), await freePort(), await freePort()];
  const stateDir = join(setup.dir, 'state');
  const yaml = [
    `state_dir: ${stateDir}`,
    'nginx: { managed: true }   # duet runs its own nginx for the demo',
    'apps:',
    '  cafeteria:',
    `    clone_url: ${cloneUrl}`,
    `    listen: "127.0.0.1:${publicPort}"`,
    `    switch: ${switchMode}${switchMode === 'socket' ? '   # the switch is an atomic symlink rename: no nginx reload' : ''}`,
    `    ports: { blue: ${bluePort}, green: ${greenPort} }`,
    '    install: npm ci --offline --no-audit --no-fund',
    '    build: ""',
    '    start: node server.js',
    '    standby: keep   # the previous color stays warm for an instant rollback',
    '    health: { path: /health, watch_s: 3 }   # after the switch, 3 s of watching before success (default 10)',
  ].join('\n');
  setup.configPath = join(setup.dir, 'duet.yml');
  setup.errorLog = join(stateDir, 'nginx', 'error.log');
  await mkdir(stateDir, { recursive: true });
  await writeFile(setup.configPath, `${yaml}\n`);
  say(indent(yaml));
  checkInterrupted();

  section('Deploying v1');
  const first = await duet(setup.configPath, ['deploy', '--ref', 'v1']);
  checkInterrupted();
  if (first.code !== 0) throw await deployFailure(`duet deploy --ref v1 failed (exit ${first.code})`);
  await showPage(publicPort, 'v1');

  section(`Deploying v2 while ${CLIENTS} ${keepAlive ? 'keep-alive' : 'Connection: close'} clients load the public port`);
  load = startLoad(publicPort);
  const second = await duet(setup.configPath, ['deploy', '--ref', 'v2']);
  if (!interrupted) await new Promise((resolve) => setTimeout(resolve, LOAD_AFTER_DEPLOY_MS));
  const stats = await load.stop();
  load = undefined;
  checkInterrupted();
  if (second.code !== 0) throw await deployFailure(`duet deploy --ref v2 failed (exit ${second.code})`);

  section('duet status');
  const status = await duet(setup.configPath, ['status']);
  if (status.code !== 0) throw new DemoFailure(`duet status failed (exit ${status.code})`);

  section('Summary');
  const failed = stats.non2xx + stats.errors;
  const seconds = (stats.stoppedAt - stats.startedAt) / 1000;
  const duetSeconds = /live on \w+ in ([\d.]+)s/.exec(second.stdout)?.[1];
  const row = (label: string, value: string): void => say(`    ${label.padEnd(22)} ${value}`);
  row('requests sent', `${stats.sent.toLocaleString('en')} in ${seconds.toFixed(1)} s (${Math.round(stats.sent / seconds).toLocaleString('en')}/s)`);
  row('failed requests', failed === 0 ? green('0') : red(`${failed} (non-2xx ${stats.non2xx}, errors ${stats.errors})`));
  for (const [reason, count] of stats.problems) row('', red(`${count} x ${reason}`));
  for (const version of [...stats.byVersion.keys()].sort()) row(`answered by ${version}`, (stats.byVersion.get(version) ?? 0).toLocaleString('en'));
  row(
    'deploy of v2',
    duetSeconds ? `${duetSeconds} s ${dim(`(${(second.ms / 1000).toFixed(1)} s with the CLI starting up)`)}` : `${(second.ms / 1000).toFixed(1)} s`,
  );
  if (failed > 0) throw new DemoFailure(`${failed} request(s) failed during the deploy of v2`);
  if (!stats.byVersion.get('v1') || !stats.byVersion.get('v2')) {
    throw new DemoFailure('the load should have been answered by v1 before the switch and by v2 after it');
  }
  say(`    ${green('zero downtime: every request was answered, first by v1, then by v2')}`);

  section('Rolling back to v1 (blue is still warm: no rebuild)');
  const back = await duet(setup.configPath, ['rollback']);
  checkInterrupted();
  if (back.code !== 0) throw await deployFailure(`duet rollback failed (exit ${back.code})`);
  await showPage(publicPort, 'v1');

  say(dim(`\n    demo steps took ${((Date.now() - demoStarted) / 1000).toFixed(1)} s`));
}

/** Stop both colors and the managed nginx, then remove the temp dir. Never throws. */
async function cleanUp(): Promise<string[]> {
  const problems: string[] = [];
  section('Cleaning up: duet down, remove the scratch directory');
  if (load) {
    await load.stop().catch(() => {});
    load = undefined;
  }
  if (setup.configPath && existsSync(setup.configPath)) {
    const down = await duet(setup.configPath, ['down'], { detached: true }).catch((error: Error) => ({ code: 1, stdout: error.message, ms: 0 }));
    if (down.code !== 0) {
      // The same clean-up through duet's library, so a broken CLI leaves nothing running.
      try {
        const config = await loadConfig(setup.configPath);
        for (const app of config.apps.values()) for (const color of ['blue', 'green'] as const) await runnerOf(app).stop(color);
        await stopManagedNginx(config);
        problems.push(`duet down failed (exit ${down.code}); both colors and nginx were stopped directly instead`);
      } catch (error) {
        problems.push(`duet down failed (exit ${down.code}) and so did stopping directly: ${(error as Error).message}`);
        problems.push(`look for leftovers: pgrep -af ${setup.dir}; pgrep -af server.js`);
      }
    }
  }
  if (setup.dir) {
    try {
      await rm(setup.dir, { recursive: true, force: true });
      say(`    removed ${setup.dir}`);
    } catch (error) {
      problems.push(`could not remove ${setup.dir}: ${(error as Error).message}`);
    }
  }
  return problems;
}

async function main(): Promise<number> {
  let cleaningUp = false;
  process.on('SIGINT', () => {
    if (cleaningUp) {
      say(dim('\n    (cleaning up, one moment)'));
      return;
    }
    interrupted = true;
    say(red('\n    interrupted: stopping and cleaning up'));
    // A Ctrl-C at the terminal already reached the child; a `kill -INT` of the demo alone did not.
    current?.kill('SIGINT');
  });

  let failure: unknown;
  let cleanUpProblems: string[];
  try {
    await run();
  } catch (error) {
    failure = error;
  } finally {
    cleaningUp = true;
    cleanUpProblems = await cleanUp();
  }

  if (failure || cleanUpProblems.length) {
    section(red('The demo FAILED'));
    if (failure instanceof DemoFailure) {
      say(`    ${failure.message}`);
      for (const line of failure.details) say(indent(line));
    } else if (failure) {
      say(indent(describeError(failure)));
    }
    for (const problem of cleanUpProblems) say(`    ${problem}`);
    return 1;
  }
  section(green('The demo succeeded: zero failed requests during the deploy'));
  return 0;
}

process.exit(await main());
