import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { median } from './stats.js';

/**
 * Timing of duet's child processes, measured from outside duet without changing it.
 *
 * duet runs git (simple-git), nginx (starting its managed one) and cp (node_modules copies) by
 * name, so a directory of shims put first in the PATH of the duet process catches each call: the
 * shim notes the wall-clock time, runs the real program, notes the time again and appends one
 * line to $BENCH_CHILD_LOG. install and build are shell commands in duet.yml, wrapped by `timed <label>`.
 * The shims use bash's $EPOCHREALTIME, so taking the time forks nothing.
 *
 * What the logged window misses (node's spawn, bash starting, the line being written) is
 * calibrated once per run against /bin/true and added back per call, so that the shims' own cost
 * is counted as child time and not as duet's overhead.
 */

export interface ChildCall {
  label: string;
  /** ms since the epoch (fractional). */
  start: number;
  end: number;
  rc: number;
  args: string;
}

export interface Shims {
  binDir: string;
  /** `timed <label> <command...>` for install and build. */
  timed: string;
  childLog: string;
  /** PATH (shims first) and BENCH_CHILD_LOG for the duet process. */
  env: Record<string, string>;
  calibration: Calibration;
}

export interface Calibration {
  /** Per shimmed call (git, nginx, cp): wall time seen by node minus the logged window, median. */
  shimMs: number;
  /** Per `sh -c 'timed ...'` (install, build): the same. */
  shellMs: number;
  samples: number;
}

const SHIMMED = ['git', 'nginx', 'cp'] as const;

function findReal(name: string): string {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin').split(delimiter)) {
    const candidate = join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} not found in PATH`);
}

const quote = (value: string): string => `'${value.replaceAll("'", "'\\''")}'`;

function shimScript(label: string, real: string): string {
  return [
    '#!/bin/bash',
    '__s=$EPOCHREALTIME',
    `${quote(real)} "$@"`,
    '__rc=$?',
    '__e=$EPOCHREALTIME',
    `[ -n "$BENCH_CHILD_LOG" ] && printf '%s %s %s %s %s\\n' ${label} "$__s" "$__e" "$__rc" "\${*//$'\\n'/ }" >> "$BENCH_CHILD_LOG"`,
    'exit $__rc',
    '',
  ].join('\n');
}

const TIMED = [
  '#!/bin/bash',
  '__l=$1; shift',
  '__s=$EPOCHREALTIME',
  '"$@"',
  '__rc=$?',
  '__e=$EPOCHREALTIME',
  `[ -n "$BENCH_CHILD_LOG" ] && printf '%s %s %s %s %s\\n' "$__l" "$__s" "$__e" "$__rc" "\${*//$'\\n'/ }" >> "$BENCH_CHILD_LOG"`,
  'exit $__rc',
  '',
].join('\n');

export async function createShims(root: string): Promise<Shims> {
  const binDir = join(root, 'bin');
  await mkdir(binDir, { recursive: true });
  for (const name of SHIMMED) {
    const path = join(binDir, name);
    await writeFile(path, shimScript(name, findReal(name)));
    await chmod(path, 0o755);
  }
  const timed = join(binDir, 'timed');
  await writeFile(timed, TIMED);
  await chmod(timed, 0o755);
  // Used by the calibration only.
  await writeFile(join(binDir, 'calib'), shimScript('calib', findReal('true')));
  await chmod(join(binDir, 'calib'), 0o755);

  const childLog = join(root, 'children.log');
  const env = { PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}`, BENCH_CHILD_LOG: childLog };
  const calibration = await calibrate(root, binDir, timed);
  return { binDir, timed, childLog, env, calibration };
}

async function calibrate(root: string, binDir: string, timed: string, samples = 15): Promise<Calibration> {
  const calibLog = join(root, 'calibration.log');
  const env = { BENCH_CHILD_LOG: calibLog };
  const measure = async (file: string, args: string[]): Promise<number[]> => {
    const gaps: number[] = [];
    for (let i = 0; i < samples; i += 1) {
      await writeFile(calibLog, '');
      const before = performance.timeOrigin + performance.now();
      await execa(file, args, { env, extendEnv: true, stdin: 'ignore' });
      const after = performance.timeOrigin + performance.now();
      const [call] = parseChildLog(await readFile(calibLog, 'utf8'));
      if (call) gaps.push(after - before - (call.end - call.start));
    }
    return gaps;
  };
  const shim = await measure(join(binDir, 'calib'), []);
  const shell = await measure('sh', ['-c', `${timed} calib true`]);
  return { shimMs: median(shim) ?? 0, shellMs: median(shell) ?? 0, samples };
}

/** "label start end rc args..." lines; start and end in seconds with microseconds. */
export function parseChildLog(text: string): ChildCall[] {
  const calls: ChildCall[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+) (\d+[.,]\d+) (\d+[.,]\d+) (\d+) ?(.*)$/.exec(line);
    if (!match) continue;
    calls.push({
      label: match[1]!,
      start: Number(match[2]!.replace(',', '.')) * 1000,
      end: Number(match[3]!.replace(',', '.')) * 1000,
      rc: Number(match[4]),
      args: match[5] ?? '',
    });
  }
  return calls;
}

export async function readChildCalls(shims: Shims): Promise<ChildCall[]> {
  if (!existsSync(shims.childLog)) return [];
  return parseChildLog(await readFile(shims.childLog, 'utf8'));
}

/** The calibrated per-call cost the logged window misses, by how the call was started. */
export function unloggedMs(call: ChildCall, calibration: Calibration): number {
  return (SHIMMED as readonly string[]).includes(call.label) ? calibration.shimMs : calibration.shellMs;
}
