import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { test as testWithDeadline } from '../support/test.js';
import { execa, type Options, type ResultPromise } from 'execa';
import { pollUntil } from '../../src/util/poll.js';
import { rootTree, type RootTree } from './root-tree.js';

/**
 * A Debian 12 system container with systemd as PID 1 (systemd-nspawn --boot), booted from a
 * throw-away overlay of the cached root tree: the tree itself is never written, and everything a
 * test does lands in the overlay's upper dir, which is removed when the test ends. Powering it off
 * and booting it again keeps the upper dir: that is a reboot of the same machine.
 *
 * It shares the host's network namespace (no --private-network): the host reaches its services on
 * 127.0.0.1, and it reaches the host's (the fake GitHub API). So every port it uses is picked free.
 * Node comes from the host, bound read-only.
 */

export interface BootReport {
  /** From starting systemd-nspawn to `systemctl is-system-running` answering running or degraded. */
  ms: number;
  state: 'running' | 'degraded';
  /** `systemctl --failed` units when degraded. */
  failed: string[];
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Container {
  name: string;
  /** The merged root as the host sees it: write files into the machine here. */
  root: string;
  tree: RootTree;
  /** Host pid of the container's PID 1 while it runs. */
  pid(): number;
  boot(): Promise<BootReport>;
  /** `systemctl poweroff` inside, and wait for systemd-nspawn to exit. Returns how long it took. */
  poweroff(): Promise<number>;
  /** Run a command inside (all namespaces of PID 1, as root), no shell. */
  exec(argv: string[], options?: { input?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<ExecResult>;
  /** Like exec, but throws with the output unless it exits 0. */
  run(argv: string[], options?: { input?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<string>;
  /** `sh -c script` inside; throws unless it exits 0. */
  sh(script: string, options?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** systemd-nspawn's console output so far (the container's boot messages). */
  console(): string;
}

/**
 * Each server test's deadline (test/support/test.ts gives the others 120 s): one machine's whole
 * story, 25-60 s with the root tree cached (README, Development); the first test of a run with an
 * empty cache makes the tree with debootstrap first (45-70 s from deb.debian.org, more from a slow
 * mirror). Its steps' own deadlines (a deploy 180 s) fire first and say what they waited for.
 */
const SERVER_TEST_TIMEOUT_MS = 10 * 60_000;

/** The server tests' test(): test/support/test.ts's, with SERVER_TEST_TIMEOUT_MS. */
export function test(name: string, fn: (t: TestContext) => Promise<void>): void {
  testWithDeadline(name, { timeout: SERVER_TEST_TIMEOUT_MS }, fn);
}

const NODE_BIN = process.execPath;
/** npm and corepack come with node; bound read-only each, so /usr/lib/node_modules stays writable (npm install -g). */
const NODE_MODULES = ['npm', 'corepack'].map((name) => join('/usr/lib/node_modules', name)).filter((dir) => existsSync(dir));

export async function startContainer(t: TestContext, options: { log?: (line: string) => void } = {}): Promise<Container> {
  const log = options.log ?? ((line: string) => t.diagnostic(line));
  const tree = await rootTree(log);
  log(`root tree ${tree.dir}: ${tree.cached ? 'cached' : `made by debootstrap in ${(tree.ms / 1000).toFixed(1)} s`}`);

  const work = await mkdtemp('/var/tmp/duet-server-');
  const upper = join(work, 'upper');
  const overlayWork = join(work, 'work');
  const root = join(work, 'root');
  await Promise.all([mkdir(upper), mkdir(overlayWork), mkdir(root)]);
  const name = `duet-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  let nspawn: ResultPromise | undefined;
  let exited: Promise<unknown> | undefined;
  let pid1: number | undefined;
  let consoleText = '';
  let mounted = false;

  // Registered first, so it runs after every later t.after of the test (they run in order of
  // registration): the container is the last thing to go.
  t.after(async () => {
    if (nspawn && nspawn.exitCode === null) {
      await poweroffQuietly().catch(() => {});
    }
    if (mounted) await execa('umount', ['--lazy', root], { reject: false });
    await rm(work, { recursive: true, force: true });
  });

  await execa('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${tree.dir},upperdir=${upper},workdir=${overlayWork}`, root]);
  mounted = true;
  await prepareMachine(root, name);

  const exec = async (argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> => {
    if (pid1 === undefined) throw new Error('the container is not running');
    const execaOptions: Options = {
      reject: false,
      timeout: opts.timeoutMs ?? 120_000,
      stripFinalNewline: true,
      ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
      // A clean environment, as a root login on the machine would have.
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root', ...opts.env },
      extendEnv: false,
    };
    const result = await execa('nsenter', ['-t', String(pid1), '-a', '--', ...argv], execaOptions);
    return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  };
  const run = async (argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<string> => {
    const result = await exec(argv, opts);
    if (result.code !== 0)
      throw new Error(`in the container: ${argv.join(' ')} exited ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`);
    return result.stdout;
  };

  const poweroffQuietly = async (): Promise<number> => {
    const started = Date.now();
    if (!nspawn || nspawn.exitCode !== null) return 0;
    if (pid1 !== undefined) await exec(['systemctl', 'poweroff', '--no-block'], { timeoutMs: 10_000 }).catch(() => undefined);
    const done = await Promise.race([exited!.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 60_000).unref())]);
    if (!done) {
      // A shutdown that hangs: killing the pid namespace's init kills everything in it.
      if (pid1 !== undefined) killQuietly(pid1);
      nspawn.kill('SIGKILL');
      await exited;
    }
    pid1 = undefined;
    return Date.now() - started;
  };

  const boot = async (): Promise<BootReport> => {
    if (nspawn && nspawn.exitCode === null) throw new Error('the container is running already');
    const started = Date.now();
    consoleText = '';
    const child = execa(
      'systemd-nspawn',
      [
        '--quiet',
        '-D',
        root,
        `--machine=${name}`,
        '--boot',
        '--register=no',
        '--keep-unit',
        '--console=pipe',
        `--bind-ro=${NODE_BIN}:/usr/bin/node`,
        ...NODE_MODULES.map((dir) => `--bind-ro=${dir}`),
      ],
      { reject: false, stdin: 'ignore', all: true, buffer: false },
    );
    child.all?.on('data', (chunk: Buffer) => (consoleText += chunk.toString()));
    nspawn = child;
    exited = child.then(() => undefined);
    const nspawnPid = child.pid!;
    // PID 1 of the container is systemd-nspawn's child running systemd.
    pid1 = await pollUntil(async () => (child.exitCode !== null ? -1 : systemdChild(nspawnPid)), { timeoutMs: 30_000 });
    if (pid1 === undefined || pid1 === -1) {
      pid1 = undefined;
      throw new Error(`systemd-nspawn did not start systemd:\n${consoleText}`);
    }
    let last = '';
    const state = await pollUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`systemd-nspawn exited ${child.exitCode} during boot:\n${consoleText}`);
        const answer = await exec(['systemctl', 'is-system-running'], { timeoutMs: 10_000 }).catch(() => undefined);
        last = answer ? `${answer.stdout} ${answer.stderr}`.trim() : last;
        const value = answer?.stdout.trim();
        return value === 'running' || value === 'degraded' ? value : undefined;
      },
      { timeoutMs: 120_000, initialIntervalMs: 50, maxIntervalMs: 250 },
    );
    if (!state) throw new Error(`the container did not finish booting in 120 s (is-system-running: ${last})\n${consoleText}`);
    const ms = Date.now() - started;
    let failed: string[] = [];
    if (state === 'degraded') {
      const list = await exec(['systemctl', '--failed', '--plain', '--no-legend', '--no-pager']);
      failed = list.stdout
        .split('\n')
        .map((line) => line.trim().split(/\s+/)[0] ?? '')
        .filter(Boolean);
      log(`booted degraded; failed units: ${failed.join(', ')}`);
    }
    return { ms, state, failed };
  };

  return {
    name,
    root,
    tree,
    pid: () => {
      if (pid1 === undefined) throw new Error('the container is not running');
      return pid1;
    },
    boot,
    poweroff: poweroffQuietly,
    exec,
    run,
    sh: (script, opts) => run(['sh', '-c', script], opts),
    console: () => consoleText,
  };
}

/** The pid of `parent`'s child that runs systemd (the container's PID 1), if there is one yet. */
function systemdChild(parent: number): number | undefined {
  for (const task of safeReaddir(`/proc/${parent}/task`)) {
    const children = safeRead(`/proc/${parent}/task/${task}/children`).split(' ').filter(Boolean);
    for (const child of children) {
      const exe = safeRead(`/proc/${child}/cmdline`).split('\0')[0] ?? '';
      if (/systemd$|\/init$/.test(exe) && safeRead(`/proc/${child}/comm`).trim() === 'systemd') return Number(child);
    }
  }
  return undefined;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/**
 * What a fresh server gets before its first boot, written into the overlay:
 * - a hostname;
 * - no default nginx site: it listens on port 80 of the host's loopback, which the container
 *   shares (the apps get free ports instead);
 * - npm, npx and corepack on PATH, as the nodejs package would put them (node itself is bound).
 */
async function prepareMachine(root: string, name: string): Promise<void> {
  await writeFile(join(root, 'etc', 'hostname'), `${name}\n`);
  await unlink(join(root, 'etc', 'nginx', 'sites-enabled', 'default')).catch(() => {});
  const links: Array<[string, string]> = [
    ['npm', '../lib/node_modules/npm/bin/npm-cli.js'],
    ['npx', '../lib/node_modules/npm/bin/npx-cli.js'],
    ['corepack', '../lib/node_modules/corepack/dist/corepack.js'],
  ];
  for (const [bin, target] of links) {
    const path = join(root, 'usr', 'bin', bin);
    if (!existsSync(path)) await symlink(target, path);
  }
}
