import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { readFileIfExists } from '../util/atomic-file.js';
import { inheritedEnv } from '../util/child-env.js';
import type { NodeRuntime } from './node-runtime.js';

/** First one present wins. */
const LOCKFILES = ['package-lock.json', 'npm-shrinkwrap.json', 'yarn.lock', 'pnpm-lock.yaml'] as const;

/** The lockfile of the checkout in `dir`, or undefined when it has none. */
export function findLockfile(dir: string): string | undefined {
  return LOCKFILES.map((name) => join(dir, name)).find((path) => existsSync(path));
}

/** Set per deploy for the app: they change with every deploy, never what an install produces. */
const PER_DEPLOY_ENV = new Set(['DUET_COLOR', 'DUET_REVISION', 'DUET_REF']);

/** The part of the install's environment that can change its result: the app's env (NODE_ENV included), npm's settings. */
function keyedEnv(env: Record<string, string>): Array<[string, string]> {
  // What reaches the install from duet's own environment (inheritedEnv): npm's settings.
  const fromDuet = Object.entries(inheritedEnv()).filter(([name]) => /^npm_config_/i.test(name));
  const all = new Map<string, string>([...fromDuet.map(([k, v]): [string, string] => [k, v ?? '']), ...Object.entries(env)]);
  // By code point, not localeCompare: its first call loads ICU's collation data, inside every deploy's install phase.
  return [...all].filter(([name]) => !PER_DEPLOY_ENV.has(name)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The install cache's key: everything that changes what a fresh install produces. The lockfile,
 * package.json (its scripts and overrides run or apply at install time), the project's and the
 * user's .npmrc, the install command and its environment, and the Node.js that runs it (version,
 * ABI, platform: native addons are built for exactly these). undefined without a lockfile.
 */
export async function installFingerprint(
  dir: string,
  inputs: { command: string; env: Record<string, string>; runtime: NodeRuntime },
): Promise<string | undefined> {
  const lockfile = findLockfile(dir);
  if (lockfile === undefined) return undefined;
  const hash = createHash('sha256');
  const part = (name: string, value: string | Buffer): void => void hash.update(name).update('\0').update(value).update('\0');
  part('lockfile', basename(lockfile));
  part('lockfile bytes', await readFile(lockfile));
  for (const [name, path] of [
    ['package.json', join(dir, 'package.json')],
    ['.npmrc', join(dir, '.npmrc')],
    ['~/.npmrc', join(homedir(), '.npmrc')],
  ] as const) {
    part(name, (await readFileIfExists(path)) ?? '(none)');
  }
  part('command', inputs.command);
  part('env', JSON.stringify(keyedEnv(inputs.env)));
  const { version, modules, platform, arch } = inputs.runtime;
  part('node', JSON.stringify({ version, modules, platform, arch }));
  return hash.digest('hex');
}
