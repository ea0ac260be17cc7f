import { accessSync, constants, realpathSync, statSync, type Stats } from 'node:fs';
import { delimiter, join } from 'node:path';
import { runArgv } from '../util/run.js';

/**
 * The Node.js that an install runs (the `node` on its PATH), not the one running duet: after an
 * upgrade of the server's node, a `duet serve` started before it still runs the old one in
 * memory, while npm builds native addons for the new ABI. Part of the install cache's key.
 */
export interface NodeRuntime {
  path: string;
  version: string;
  /** process.versions.modules: the ABI native addons are built for. */
  modules: string;
  platform: string;
  arch: string;
}

const PROBE = 'JSON.stringify({version:process.version,modules:process.versions.modules,platform:process.platform,arch:process.arch})';

/** Asked once per node binary (path, size, mtime, inode) per duet process: each ask spawns node. */
const known = new Map<string, Promise<NodeRuntime>>();

/** The `node` first on `pathVariable` (the install's PATH), asked for its version and ABI. */
export function nodeRuntime(pathVariable: string | undefined): Promise<NodeRuntime> {
  const binary = findOnPath('node', pathVariable);
  if (!binary) return Promise.reject(new Error(`no node on PATH (${pathVariable ?? ''})`));
  const stat = statSync(binary);
  if (isRunningBinary(stat)) return Promise.resolve(ownRuntime(binary));
  const key = `${binary}\0${stat.size}\0${stat.mtimeMs}\0${stat.ino}`;
  let runtime = known.get(key);
  if (!runtime) {
    runtime = runArgv([binary, '-p', PROBE], { step: 'install', timeoutMs: 10_000 }).then((out) => ({
      path: binary,
      ...(JSON.parse(out) as Omit<NodeRuntime, 'path'>),
    }));
    // A failed probe is not remembered: the next install asks again.
    runtime.catch(() => known.delete(key));
    known.set(key, runtime);
  }
  return runtime;
}

/**
 * Whether `stat` is of the very file this process executes: /proc/self/exe is the inode it was
 * started from, even after an upgrade replaced the path, and a running executable cannot be
 * written in place (ETXTBSY). Its answers are then this process's own, without spawning it (a
 * node start on the critical path of every install, about 40 ms and more on a busy machine).
 */
function isRunningBinary(stat: Stats): boolean {
  own ??= ownInode();
  return own !== null && stat.dev === own.dev && stat.ino === own.ino;
}

let own: { dev: number; ino: number } | null | undefined;

function ownInode(): { dev: number; ino: number } | null {
  try {
    const { dev, ino } = statSync('/proc/self/exe');
    return { dev, ino };
  } catch {
    return null; // not Linux: asked like any other node
  }
}

function ownRuntime(path: string): NodeRuntime {
  return { path, version: process.version, modules: process.versions.modules, platform: process.platform, arch: process.arch };
}

/**
 * The `node` on `pathVariable` as a key that changes when it is upgraded (path, size, mtime,
 * inode), without running it: part of a color's configuration hash, asked at every start.
 */
export function nodeBinaryKey(pathVariable: string | undefined): string {
  const binary = findOnPath('node', pathVariable);
  if (!binary) return '(no node on PATH)';
  const stat = statSync(binary);
  return `${binary}\0${stat.size}\0${stat.mtimeMs}\0${stat.ino}`;
}

function findOnPath(name: string, pathVariable: string | undefined): string | undefined {
  for (const dir of (pathVariable ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return realpathSync(candidate);
    } catch {
      // not here
    }
  }
  return undefined;
}
