import { openSync, closeSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseConfig, pickApp, type Config } from '../../src/config/load.js';
import { ensureManagedNginx, stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { switchOf } from '../../src/switch/switch.js';
import { repoRoot, testGitEnv, type AppRepo } from '../../test/support/git-repo.js';
import { freePort } from '../../test/support/ports.js';
import { ownDir, track, type Scope } from './cleanup.js';
import { now } from './duet-env.js';
import { waitForHealth } from './http.js';
import { isAlive, waitForExit } from './proc.js';

/**
 * The setups duet is compared with, behind the same nginx configuration duet writes in port mode
 * (rendered from duet's own templates, run with duet's managed-nginx code): one app directory on
 * one port, deployed either by a naive in-place restart or by `pm2 reload` in cluster mode.
 */

export interface Baseline {
  publicPort: number;
  appPort: number;
  appDir: string;
  /** git fetch + checkout of `tag` in the app directory, then install and build: what both do. */
  update(tag: string): Promise<void>;
  naive: {
    start(): Promise<void>;
    /** stop, update, install, build, start, wait until healthy. Returns ms from stop to healthy. */
    deploy(tag: string): Promise<{ totalMs: number; downMs: number }>;
    stop(): Promise<void>;
    /** The app's pid while it runs. */
    pid(): number | undefined;
  };
  pm2: {
    start(): Promise<void>;
    /** update, install, build, `pm2 reload`. */
    deploy(tag: string): Promise<{ totalMs: number }>;
    stop(): Promise<void>;
    /** Pids of the workers pm2 lists as online. */
    workers(): Promise<number[]>;
  };
}

const INSTALL = 'npm ci --offline --no-audit --no-fund';

export interface BaselineOptions {
  /** Its directory under the scratch dir ("baseline" by default): two baselines need two. */
  name?: string;
  /** BENCH_APP_LOG for the app (bench/app/server.js appends a line when it listens, stops or crashes on purpose). */
  appLog?: string;
}

export async function createBaseline(scope: Scope, root: string, repo: AppRepo, firstTag: string, options: BaselineOptions = {}): Promise<Baseline> {
  const { appLog } = options;
  const dir = join(root, options.name ?? 'baseline');
  const stateDir = join(dir, 'state');
  const appDir = join(dir, 'app');
  const pm2Home = join(dir, 'pm2');
  await mkdir(stateDir, { recursive: true });
  ownDir(dir);
  const publicPort = await freePort();
  const appPort = await freePort();

  // A config only so that duet's managed-nginx code runs this nginx (same main config as duet's).
  const yaml = [
    `state_dir: ${stateDir}`,
    'nginx: { managed: true }',
    'apps:',
    '  baseline:',
    `    clone_url: ${repo.bareUrl}`,
    `    listen: "127.0.0.1:${publicPort}"`,
  ].join('\n');
  const config: Config = parseConfig(yaml, join(dir, 'duet.yml'));
  // One server and no backup: rendered as duet renders it with `fallback: false`.
  const app = pickApp(config, 'baseline');
  const site = await switchOf({ ...app, fallback: false, ports: { blue: appPort, green: appPort } }).renderConf('blue');
  await mkdir(config.nginx.managed!.confDir, { recursive: true });
  await writeFile(join(config.nginx.managed!.confDir, 'baseline.conf'), site);
  scope.after(() => stopManagedNginx(config));
  await ensureManagedNginx(config);

  const gitEnv = testGitEnv(dir);
  const git = async (args: string[], cwd = appDir): Promise<void> => {
    const child = execa('git', args, { cwd, env: gitEnv, extendEnv: true, stdin: 'ignore' });
    await track(child, child);
  };
  const sh = async (command: string): Promise<void> => {
    const child = execa('sh', ['-c', command], { cwd: appDir, stdin: 'ignore' });
    await track(child, child);
  };
  const update = async (tag: string): Promise<void> => {
    await git(['fetch', '--quiet', '--depth', '1', 'origin', `refs/tags/${tag}:refs/tags/${tag}`]);
    await git(['checkout', '--quiet', '--force', '--detach', `refs/tags/${tag}`]);
    await sh(INSTALL);
    await sh('node build.js');
  };
  await git(['clone', '--quiet', '--no-checkout', repo.bareDir, appDir], dir);
  await update(firstTag);

  const logEnv: Record<string, string> = appLog ? { BENCH_APP_LOG: appLog } : {};

  // --- naive: one process on one port, restarted in place ---------------------------------
  let pid: number | undefined;
  const startNaive = async (): Promise<void> => {
    const out = openSync(join(dir, 'naive.log'), 'a');
    const child = spawn('node', ['server.js'], {
      cwd: appDir,
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, PORT: String(appPort), HOST: '127.0.0.1', ...logEnv },
    });
    closeSync(out);
    child.unref();
    pid = child.pid;
    if (!(await waitForHealth(appPort))) throw new Error('the naive app did not become healthy');
  };
  const stopNaive = async (): Promise<void> => {
    if (pid === undefined || !isAlive(pid)) return;
    process.kill(pid, 'SIGTERM');
    if (!(await waitForExit(pid, 10_000))) process.kill(pid, 'SIGKILL');
    pid = undefined;
  };
  scope.after(stopNaive);

  // --- pm2: cluster mode, two workers (one per core), graceful reload -----------------------
  const pm2Bin = join(repoRoot(), 'node_modules', '.bin', 'pm2');
  const pm2Env = { PM2_HOME: pm2Home };
  const ecosystem = join(dir, 'ecosystem.config.cjs');
  await writeFile(
    ecosystem,
    `module.exports = { apps: [{ name: 'bench-app', script: 'server.js', cwd: ${JSON.stringify(appDir)}, ` +
      `instances: 2, exec_mode: 'cluster', autorestart: true, ` +
      `env: ${JSON.stringify({ PORT: String(appPort), HOST: '127.0.0.1', ...logEnv })} }] };\n`,
  );
  let pm2Started = false;
  const pm2 = async (args: string[]): Promise<string> => {
    const child = execa(pm2Bin, args, { env: pm2Env, extendEnv: true, stdin: 'ignore', reject: false, timeout: 60_000 });
    void track(child, child); // awaited below
    const result = await child;
    if (result.exitCode !== 0)
      throw new Error(`pm2 ${args.join(' ')} exited ${result.exitCode}:\n${`${String(result.stdout)}\n${String(result.stderr)}`.slice(-2000)}`);
    return String(result.stdout);
  };
  const stopPm2 = async (): Promise<void> => {
    if (!pm2Started) return;
    pm2Started = false;
    await pm2(['kill']).catch(() => {});
  };
  scope.after(stopPm2);

  return {
    publicPort,
    appPort,
    appDir,
    update,
    naive: {
      start: startNaive,
      async deploy(tag) {
        const started = now();
        await stopNaive();
        await update(tag);
        await startNaive();
        const healthy = now();
        return { totalMs: healthy - started, downMs: healthy - started };
      },
      stop: stopNaive,
      pid: () => (pid !== undefined && isAlive(pid) ? pid : undefined),
    },
    pm2: {
      async start() {
        pm2Started = true;
        await pm2(['start', ecosystem]);
        if (!(await waitForHealth(appPort))) throw new Error('the pm2 app did not become healthy');
      },
      async deploy(tag) {
        const started = now();
        await update(tag);
        await pm2(['reload', 'bench-app']);
        return { totalMs: now() - started };
      },
      stop: stopPm2,
      async workers() {
        const list = JSON.parse(await pm2(['jlist'])) as Array<{ pid: number; pm2_env?: { status?: string } }>;
        return list.filter((w) => w.pm2_env?.status === 'online' && w.pid > 0).map((w) => w.pid);
      },
    },
  };
}
