import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { log } from './log.js';

/**
 * Everything the benchmark starts is stopped and every temp dir removed, also on failure and on
 * Ctrl-C. A Scope collects clean-up hooks like node:test's `t.after` (the test/support helpers
 * take a TestContext and only ever call `after` on it) and runs them in registration order, as
 * node:test does: those helpers register "stop the processes" before "remove the directories".
 */

type Hook = () => unknown;

export class Scope {
  private readonly hooks: Hook[] = [];
  private closed = false;

  constructor(readonly name: string) {}

  after(hook: Hook): void {
    if (this.closed) throw new Error(`scope ${this.name} is already closed`);
    this.hooks.push(hook);
  }

  /** A hook that runs before every hook registered so far (a server to stop before its files go). */
  first(hook: Hook): void {
    if (this.closed) throw new Error(`scope ${this.name} is already closed`);
    this.hooks.unshift(hook);
  }

  /** What test/support's helpers want: an object with `after`. */
  get context(): TestContext {
    return { after: (hook: Hook) => this.after(hook) } as unknown as TestContext;
  }

  /** Runs every hook, even after one failed; returns what went wrong. */
  async close(): Promise<string[]> {
    if (this.closed) return [];
    this.closed = true;
    scopes.delete(this);
    const problems: string[] = [];
    for (const hook of this.hooks) {
      try {
        await hook();
      } catch (error) {
        problems.push(`${this.name}: ${(error as Error).message}`);
      }
    }
    return problems;
  }
}

const scopes = new Set<Scope>();
/** Directories only this benchmark uses: any process still running from one is ours. */
const ownDirs = new Set<string>();
/** Child processes to kill on an interrupt (load generators, CLI runs, servers). */
const children = new Set<{ kill(signal?: NodeJS.Signals): boolean; pid?: number | undefined }>();

export function openScope(name: string): Scope {
  const scope = new Scope(name);
  scopes.add(scope);
  return scope;
}

export function ownDir(dir: string): void {
  ownDirs.add(dir);
}

/** Remember a child until it exits, so an interrupt can stop it. */
export function track<T extends { kill(signal?: NodeJS.Signals): boolean; pid?: number | undefined }>(child: T, exited: Promise<unknown>): T {
  children.add(child);
  void exited.finally(() => children.delete(child)).catch(() => {});
  // Started after Ctrl-C by code that had not noticed yet: stopped at once.
  if (interrupted) child.kill('SIGKILL');
  return child;
}

export function killChildren(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of children) child.kill(signal);
}

/** Close every scope still open, newest first, then sweep. */
export async function closeAll(): Promise<string[]> {
  killChildren('SIGKILL');
  const problems: string[] = [];
  for (const scope of [...scopes].reverse()) problems.push(...(await scope.close()));
  problems.push(...sweep());
  return problems;
}

/**
 * Last resort: a process whose working directory or command line lies in one of our own temp
 * dirs (an app started by a deploy that was interrupted before it wrote its pidfile, a pm2
 * daemon) is ours; it gets SIGKILL by pid.
 */
export function sweep(): string[] {
  if (ownDirs.size === 0) return [];
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid || pid === process.ppid) continue;
    let where = '';
    try {
      where = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // gone, or not ours to read
    }
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      // gone
    }
    if ([...ownDirs].some((dir) => where.startsWith(dir) || cmdline.includes(dir))) {
      try {
        process.kill(pid, 'SIGKILL');
        found.push(`killed leftover pid ${pid}: ${cmdline.slice(0, 120)}`);
      } catch {
        // already gone
      }
    }
  }
  return found;
}

let interrupted = false;
let interruptCleanup: Promise<never> | undefined;
export const isInterrupted = (): boolean => interrupted;

/** After an interrupt: never resolves; the signal handler exits once everything is cleaned up. */
export function awaitInterruptCleanup(): Promise<never> {
  return interruptCleanup ?? new Promise<never>(() => {});
}

/** Ctrl-C / SIGTERM: stop children, clean up, exit 130. A second signal during clean-up is ignored. */
export function handleSignals(): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      log('(cleaning up, one moment)');
      return;
    }
    interrupted = true;
    log(`\n${signal}: stopping everything the benchmark started`);
    interruptCleanup = closeAll().then((problems) => {
      for (const problem of problems) log(`  ${problem}`);
      log('stopped; everything the benchmark started is gone');
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
