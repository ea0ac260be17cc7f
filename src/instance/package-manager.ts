import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { findLockfile } from './install-key.js';

type PackageManagerName = 'npm' | 'pnpm' | 'yarn';

/**
 * How a project's dependencies are installed and pruned, chosen by its lockfile: npm's
 * package-lock.json (or npm-shrinkwrap.json, or no lockfile at all), pnpm's pnpm-lock.yaml, yarn's
 * yarn.lock. pnpm and yarn run through corepack, which ships with Node.js 20 and runs the version
 * the project's `packageManager` field names, so the server needs no global install of either.
 *
 * Every install includes the devDependencies, whatever NODE_ENV the app's env sets: the build
 * needs them (`tsc`, `nest`, `vite`), and `npm ci` under NODE_ENV=production leaves them out.
 * What only the build needed is pruned after it (`prune`), as Heroku's and Dokku's Node builds do.
 */
interface PackageManager {
  name: PackageManagerName;
  /** The install command line when duet.yml's `install` sets none. */
  install: string;
  /** Set in the install's environment: the devDependencies, also under NODE_ENV=production. */
  devEnv: Record<string, string>;
  /** Set for every command of this tool (install, prune, doctor's). */
  toolEnv: Record<string, string>;
  /** Removes the devDependencies after the build; undefined: this tool cannot (yarn 2+ has no prune). */
  prune: readonly string[] | undefined;
  /** What `duet doctor` runs to tell that the tool is there. */
  versionCommand: readonly string[];
}

/**
 * corepack downloads the tool on first use: it must not stop to ask (there is no terminal). It
 * checks what it downloads against the registry's signatures, or against the hash in
 * `packageManager` ("pnpm@9.15.9+sha512.<hex>"): pin one when your registry mirror strips the
 * signatures (corepack then says "No compatible signature found in package metadata").
 */
const COREPACK_ENV = { COREPACK_ENABLE_DOWNLOAD_PROMPT: '0' };

const NPM: PackageManager = {
  name: 'npm',
  install: 'npm ci',
  // An environment variable, not a flag, so that an install command of the operator's own
  // (`npm ci --legacy-peer-deps`) gets it as well.
  devEnv: { npm_config_include: 'dev' },
  toolEnv: {},
  prune: ['npm', 'prune', '--omit=dev', '--no-audit', '--no-fund'],
  versionCommand: ['npm', '--version'],
};

const PNPM: PackageManager = {
  name: 'pnpm',
  install: 'corepack pnpm install --frozen-lockfile --prod=false',
  devEnv: {},
  toolEnv: COREPACK_ENV,
  prune: ['corepack', 'pnpm', 'prune', '--prod'],
  versionCommand: ['corepack', 'pnpm', '--version'],
};

/** yarn 1 (corepack's default without a `packageManager` field): prunes by installing again with --production. */
const YARN_CLASSIC: PackageManager = {
  name: 'yarn',
  install: 'corepack yarn install --frozen-lockfile --production=false',
  devEnv: {},
  toolEnv: COREPACK_ENV,
  prune: ['corepack', 'yarn', 'install', '--frozen-lockfile', '--production=true', '--ignore-scripts'],
  versionCommand: ['corepack', 'yarn', '--version'],
};

/** yarn 2+ ignores NODE_ENV (it always installs everything) and cannot prune. */
const YARN_BERRY: PackageManager = {
  name: 'yarn',
  install: 'corepack yarn install --immutable',
  devEnv: {},
  toolEnv: COREPACK_ENV,
  prune: undefined,
  versionCommand: ['corepack', 'yarn', '--version'],
};

/** The package manager the checkout in `dir` asks for. */
export function packageManagerOf(dir: string): PackageManager {
  const lockfile = findLockfile(dir);
  const name = lockfile ? basename(lockfile) : undefined;
  if (name === 'pnpm-lock.yaml') return PNPM;
  if (name === 'yarn.lock') return /^yarn@(?!1\.)/.test(declaredPackageManager(dir) ?? '') ? YARN_BERRY : YARN_CLASSIC;
  return NPM;
}

/** package.json's `packageManager` ("yarn@4.5.0+sha512..."), read by corepack too. */
function declaredPackageManager(dir: string): string | undefined {
  try {
    const value = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { packageManager?: unknown }).packageManager;
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The install command duet runs for the app in `dir`: duet.yml's own, or the package manager's. */
export function installCommand(app: AppConfig, dir: string): string {
  return app.install ?? packageManagerOf(dir).install;
}

/**
 * npm settings that decide which dependency types an install includes: when the app's env or the
 * install command sets one of these, the operator has chosen, and duet adds nothing.
 */
const DEPENDENCY_TYPE_SETTINGS = /^npm_config_(?:include|omit|production|only|dev|also)$/i;
const DEPENDENCY_TYPE_FLAGS = /(?:^|\s)--(?:include|omit|production|prod|only|dev|also)\b/;

/**
 * The environment of the install: the app's, plus what makes the package manager include the
 * devDependencies; withDev is false when the operator chose the dependency types.
 */
export function installEnv(env: Record<string, string>, dir: string, command: string): { env: Record<string, string>; withDev: boolean } {
  if (
    Object.keys(env).some((name) => DEPENDENCY_TYPE_SETTINGS.test(name)) ||
    (command !== packageManagerOf(dir).install && DEPENDENCY_TYPE_FLAGS.test(command))
  ) {
    return { env: { ...packageManagerOf(dir).toolEnv, ...env }, withDev: false };
  }
  const manager = packageManagerOf(dir);
  return { env: { ...manager.toolEnv, ...env, ...manager.devEnv }, withDev: true };
}

/** The environment of the prune: without the setting that makes npm keep the devDependencies. */
export function pruneEnv(env: Record<string, string>, manager: PackageManager): Record<string, string> {
  return { ...manager.toolEnv, ...Object.fromEntries(Object.entries(env).filter(([name]) => !/^npm_config_include$/i.test(name))) };
}
