import { existsSync, readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { CommandFailedError, DuetError } from '../errors.js';
import { pollUntil } from '../util/poll.js';
import { runArgv, type OutputSink } from '../util/run.js';
import { stepEnvFiles } from './app-secrets.js';

/**
 * Every command of the build side (install, build, prune, and what completes a reused tree) runs
 * through here, next to the live color on the same small machine, so that it never slows it down:
 * - at the lowest CPU and I/O priority (SCHED_IDLE, ionice idle) and with oom_score_adj 1000, so
 *   the kernel's OOM killer takes the build before the app or duet. Set by util-linux's chrt,
 *   ionice and choom, which exec the command: it and every process it starts inherit them from
 *   their first instruction, with no window in which a child of npm runs at normal priority.
 *   None needs a privilege (lowering one's own priority and raising one's oom_score_adj is free);
 * - with app_user, in duet-build.slice (systemd/duet-step@.service), whose memory limits come
 *   from build_limits;
 * - and a build the kernel killed for memory is named as such, with what to do about it.
 */

/** The tools, in the order they exec each other; a missing one is left out (duet doctor says so). */
const PRIORITY_TOOLS = [
  { tool: 'chrt', args: ['--idle', '0'] },
  { tool: 'ionice', args: ['-c', '3'] },
  { tool: 'choom', args: ['-n', '1000', '--'] },
] as const;

/** Without chrt, nice 19 (coreutils) at least. */
const NICE_FALLBACK = ['nice', '-n', '19'];

let cachedPrefix: string[] | undefined;

export function onPath(tool: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, tool)));
}

/** The argv prefix that runs a command at build priority: `chrt --idle 0 ionice -c 3 choom -n 1000 --`. */
export function isolationPrefix(): string[] {
  if (cachedPrefix) return cachedPrefix;
  const prefix: string[] = [];
  for (const { tool, args } of PRIORITY_TOOLS) {
    if (onPath(tool)) prefix.push(tool, ...args);
    else if (tool === 'chrt' && onPath('nice')) prefix.push(...NICE_FALLBACK);
  }
  cachedPrefix = prefix;
  return prefix;
}

/** Which of the build's protections this machine gives it (duet doctor). */
export function missingPriorityTools(path = process.env.PATH ?? ''): string[] {
  return PRIORITY_TOOLS.map(({ tool }) => tool).filter((tool) => !onPath(tool, path));
}

export interface BuildStepOptions {
  step: 'install' | 'build' | 'prune' | 'release';
  cwd: string;
  env: Record<string, string>;
  output?: OutputSink;
  /** The color's stepGroup: where the running command's process group is recorded. */
  group?: string;
  hint: string;
  /** How the command is shown; its argv joined when not given. */
  shown?: string;
  /** Past timeoutMs its group gets SIGTERM, and SIGKILL graceMs later (the release). */
  timeoutMs?: number;
  graceMs?: number;
}

/** Run one build-side command of `app`: the app's code, at build priority, named when killed for memory. */
export async function runBuildStep(app: AppConfig, argv: readonly string[], options: BuildStepOptions): Promise<string> {
  const cgroup = buildCgroup(app);
  const oomKillsBefore = oomKills(cgroup);
  try {
    return await runArgv([...isolationPrefix(), ...argv], {
      step: options.step,
      cwd: options.cwd,
      env: options.env,
      forApp: true,
      output: options.output,
      group: options.group,
      stepSocket: app.stepSocket,
      hint: options.hint,
      shown: options.shown ?? argv.join(' '),
      timeoutMs: options.timeoutMs,
      graceMs: options.graceMs,
      envFiles: stepEnvFiles(app, options.step, options.env),
    });
  } catch (error) {
    const named = error instanceof CommandFailedError ? killedForMemory(error, cgroup, oomKillsBefore) : undefined;
    throw named ?? error;
  }
}

/** Run an operator-written command line (install, build, release) from duet.yml as a build step. */
export function runBuildShell(app: AppConfig, command: string, options: Omit<BuildStepOptions, 'shown'>): Promise<string> {
  return runBuildStep(app, ['sh', '-c', command], { ...options, shown: command });
}

/** The slice duet-step@.service puts the steps of app_user in (systemd/duet-build.slice.template). */
export const BUILD_SLICE = 'duet-build.slice';

const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * The cgroup (v2) the build runs in, when there is one to read: duet-build.slice with app_user,
 * else duet's own (the build is its child), which is the machine's root on a system without
 * systemd, where memory.events does not exist and exit 137 is all there is to go by.
 */
function buildCgroup(app: AppConfig): string | undefined {
  // systemd nests a slice under the one its name's prefix names: duet-build.slice is in duet.slice.
  if (app.stepSocket !== undefined) return join(CGROUP_ROOT, 'duet.slice', BUILD_SLICE);
  const own = ownCgroup();
  return own === undefined ? undefined : join(CGROUP_ROOT, own);
}

export function ownCgroup(): string | undefined {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith('0::'));
    return line?.slice(3).trim() || undefined;
  } catch {
    return undefined;
  }
}

function readCgroupFile(cgroup: string | undefined, file: string): string | undefined {
  if (cgroup === undefined) return undefined;
  try {
    return readFileSync(join(cgroup, file), 'utf8');
  } catch {
    return undefined;
  }
}

/** memory.events' oom_kill: processes of the cgroup (or below) the OOM killer killed, of any kind. */
function oomKills(cgroup: string | undefined): number | undefined {
  const match = /^oom_kill (\d+)$/m.exec(readCgroupFile(cgroup, 'memory.events') ?? '');
  return match ? Number(match[1]) : undefined;
}

const gib = (bytes: number): string => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** What the build could have: the cgroup's memory.max, or the machine's RAM and swap. */
export function memoryLimitText(cgroup: string | undefined): string {
  const max = readCgroupFile(cgroup, 'memory.max')?.trim();
  if (max !== undefined && /^\d+$/.test(max)) return `memory.max ${gib(Number(max))} of ${cgroup}`;
  const swap = /^SwapTotal:\s+(\d+) kB$/m.exec(readFileSyncOr('/proc/meminfo'))?.[1];
  const swapText = swap === undefined || swap === '0' ? 'no swap' : `${gib(Number(swap) * 1024)} of swap`;
  return `no cgroup limit: the machine's ${gib(totalmem())} of RAM, ${swapText}`;
}

function readFileSyncOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The command was killed by the kernel for lack of memory: the cgroup's memory.events counted an
 * OOM kill while it ran, or it ended by SIGKILL (exit 137 through the shell), the OOM killer's
 * mark where there is no memory.events to read (duet SIGKILLs a build only when it stops itself).
 */
function killedForMemory(error: CommandFailedError, cgroup: string | undefined, before: number | undefined): DuetError | undefined {
  const after = oomKills(cgroup);
  const counted = before !== undefined && after !== undefined && after > before;
  if (!counted && error.exitStatus !== 137 && error.signal !== 'SIGKILL') return undefined;
  const how = counted ? `memory.events counted ${after - before} OOM kill(s)` : 'SIGKILL, exit 137';
  return new DuetError(
    `the ${error.step} was killed for lack of memory (limit: ${memoryLimitText(cgroup)}; ${how}): \`${error.command}\`${error.outputTail.trim() ? `\n--- last output ---\n${error.outputTail.trim()}` : ''}`,
    {
      step: error.step,
      hint: 'raise build_limits.memory_max, add swap, or deploy a prebuilt artifact; the live color is untouched',
      cause: error,
    },
  );
}

/** MemAvailable of /proc/meminfo, in MiB (os.freemem() where there is no /proc). */
export function availableMemoryMb(): number {
  const kb = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSyncOr('/proc/meminfo'))?.[1];
  return kb === undefined ? Math.floor(freemem() / 1024 ** 2) : Math.floor(Number(kb) / 1024);
}

/**
 * build_limits.min_free_memory_mb: wait until the machine has that much memory available before
 * the install starts (another app's build or a cron job may be finishing), or fail the update.
 */
export async function waitForFreeMemory(app: AppConfig, output?: OutputSink): Promise<void> {
  const { min_free_memory_mb: wanted, min_free_memory_wait_s: waitS } = app.buildLimits;
  if (wanted <= 0 || availableMemoryMb() >= wanted) return;
  output?.write(`duet: waiting for ${wanted} MiB of available memory before the build (${availableMemoryMb()} MiB now; up to ${waitS} s)\n`);
  const enough = await pollUntil(async () => (availableMemoryMb() >= wanted ? true : undefined), {
    timeoutMs: waitS * 1000,
    initialIntervalMs: 200,
    maxIntervalMs: 2000,
  });
  if (!enough) {
    throw new DuetError(`only ${availableMemoryMb()} MiB of memory available after ${waitS} s; build_limits.min_free_memory_mb asks for ${wanted}`, {
      step: 'install',
      hint: 'stop what uses the memory, add swap, lower build_limits.min_free_memory_mb, or deploy a prebuilt artifact; the live color is untouched',
    });
  }
}
