import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import { parseConfig, pickApp, type AppConfig, type Config } from '../../src/config/load.js';
import { runnerOf } from '../../src/instance/runner.js';
import { stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { createAppRepo, repoRoot, type AppRepo, type FileChanges } from './git-repo.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

/**
 * A whole duet setup for one test: the sample app's repository with tags, a duet.yml with a
 * managed nginx on free loopback ports, and the real `duet` binary run as a child process.
 * Everything it starts (both colors, nginx) is stopped when the test ends, pass or fail.
 */
export interface DuetSetup {
  dir: string;
  configPath: string;
  config: Config;
  app: AppConfig;
  repo: AppRepo;
  listenPort: number;
  duet(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** duet() in the background, its output readable while it runs (a deploy waiting for a lock says so). */
  start(args: string[], env?: Record<string, string>): RunningCli;
  /** Like duet(), but fails the test with duet's own output when it does not exit 0. */
  succeed(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** GET through nginx's public port with Connection: close. */
  get(path?: string): Promise<PublicAnswer>;
  /** Run `cleanup` when the test ends, after the colors and nginx stopped, before the dirs go (an unmount). */
  afterStop(cleanup: () => Promise<void>): void;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  /** stdout and stderr so far, interleaved. */
  output(): string;
  done: Promise<CliResult>;
  /** SIGKILL: a test that gives up waiting for it leaves nothing running. */
  kill(): void;
}

export interface PublicAnswer {
  status: number;
  body: string;
  color: string | undefined;
}

export interface SetupOptions {
  switchMode?: 'port' | 'socket';
  standby?: 'keep' | 'stop';
  /** App keys to set or override: key -> YAML value, e.g. { health: '{ path: /health, timeout_s: 1 }' }. */
  app?: Record<string, string>;
  /** The `nginx:` value (YAML flow map); a managed nginx by default. */
  nginx?: string;
  /** Extra top-level keys: key -> YAML value, e.g. { server: '{ listen: "127.0.0.1:9100" }' }. */
  top?: Record<string, string>;
  /** Where state_dir is (a tmpfs the test mounted, say); `<dir>/state` by default. */
  stateDir?: string;
  /** Tags to create: name -> files changed in that version. v1 and v2 by default. */
  tags?: Record<string, FileChanges>;
}

/** The bundle `npm run build` makes, which is what the `duet` binary runs. */
export const cliPath = (): string => join(repoRoot(), 'dist', 'bin', 'duet.mjs');

export async function setupDuet(t: TestContext, options: SetupOptions = {}): Promise<DuetSetup> {
  let config: Config | undefined;
  const afterStop: Array<() => Promise<void>> = [];
  // Registered before the temp dirs: node:test runs `after` hooks in order, and the processes
  // must be gone before their directories are removed.
  t.after(async () => {
    if (config) {
      for (const app of config.apps.values()) {
        await runnerOf(app)
          .stop('blue')
          .catch(() => {});
        await runnerOf(app)
          .stop('green')
          .catch(() => {});
      }
      await stopManagedNginx(config).catch(() => {});
    }
    for (const cleanup of afterStop) await cleanup();
  });
  const repo = await createAppRepo(t);
  const tags = options.tags ?? { v1: {}, v2: { VERSION: 'v2\n' } };
  for (const [name, files] of Object.entries(tags)) await repo.tag(name, files);

  const dir = await tempDir(t, 'duet-state');
  const listenPort = await freePort();
  const [blue, green] = [await freePort(), await freePort()];
  const appKeys: Record<string, string> = {
    repo: 'inu-appcenter/cafeteria-server',
    clone_url: repo.bareUrl,
    listen: `"127.0.0.1:${listenPort}"`,
    switch: options.switchMode ?? 'port',
    ports: `{ blue: ${blue}, green: ${green} }`,
    // Fast stand-ins for npm: the fixture has no dependencies and nothing to build.
    install: 'mkdir -p node_modules',
    build: '""',
    start: 'exec node server.js',
    // A short watch: every deploy in the tests goes through it, none waits the default 10 s.
    health: '{ path: /health, timeout_s: 10, watch_s: 0.3 }',
    standby: options.standby ?? 'keep',
    drain_s: '0',
    stop_timeout_s: '2',
    ...options.app,
  };
  const yaml = [
    `state_dir: ${options.stateDir ?? join(dir, 'state')}`,
    `nginx: ${options.nginx ?? '{ managed: true }'}`,
    ...Object.entries(options.top ?? {}).map(([key, value]) => `${key}: ${value}`),
    'apps:',
    '  cafeteria:',
    ...Object.entries(appKeys).map(([key, value]) => `    ${key}: ${value}`),
  ].join('\n');
  const configPath = join(dir, 'duet.yml');
  await writeFile(configPath, `${yaml}\n`);
  config = parseConfig(yaml, configPath);
  const app = pickApp(config, 'cafeteria');

  const start = (args: string[], env: Record<string, string> = {}): RunningCli => {
    const child = execa('node', [cliPath(), '--config', configPath, ...args], {
      reject: false,
      stdin: 'ignore',
      env: { ...env },
      extendEnv: true,
      // A deploy's install and build run at idle priority (build-step.ts): on a machine busy with
      // other tests a cold npm ci and tsc take minutes. The test's own deadline bounds a hang.
      timeout: 240_000,
      stripFinalNewline: false,
      all: true,
    });
    let output = '';
    child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const done = child.then((result) => {
      if (process.env.DUET_TEST_TIMING) process.stderr.write(`duet ${args.join(' ')}: ${result.durationMs.toFixed(0)} ms\n`);
      return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
    });
    return { output: () => output, done, kill: () => void child.kill('SIGKILL') };
  };
  const duet = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => start(args, env).done;

  return {
    dir,
    configPath,
    config,
    app,
    repo,
    listenPort,
    duet,
    start,
    async succeed(args, env) {
      const result = await duet(args, env);
      if (result.code !== 0) {
        throw new Error(`duet ${args.join(' ')} exited ${result.code}\n--- stderr ---\n${result.stderr}--- stdout ---\n${result.stdout}`);
      }
      return result;
    },
    get: (path = '/') => getPublic(listenPort, path),
    afterStop: (cleanup) => void afterStop.push(cleanup),
  };
}

export function getPublic(port: number, path = '/'): Promise<PublicAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const color = res.headers['x-duet-color'];
        resolve({ status: res.statusCode ?? 0, body, color: Array.isArray(color) ? color[0] : color });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
