import { join } from 'node:path';
import { readFileIfExists } from '../util/atomic-file.js';

/**
 * Code an install runs besides unpacking packages. Its result can depend on files of the commit
 * that no cache key sees (a patch-package patch, a Prisma schema), so a skipped or copied install
 * is only as good as a fresh one when that code runs again for the new commit.
 */
interface InstallScripts {
  /** The root package's lifecycle scripts that `npm ci` runs (preinstall, install, postinstall, prepare). */
  root: string[];
  /** Dependencies with install scripts (hasInstallScript in package-lock.json), by package name. */
  dependencies: string[];
  /** false: the lockfile does not say which dependencies have install scripts (yarn.lock, pnpm-lock.yaml). */
  known: boolean;
}

const ROOT_LIFECYCLE = ['preinstall', 'install', 'postinstall', 'prepare'] as const;

/**
 * npm's rule for a package name, without a leading `-`: the name reaches npm's command line, so
 * nothing that could read as an option gets through.
 */
const PACKAGE_NAME = /^(?:@[a-z0-9~][a-z0-9-._~]*\/)?[a-z0-9~][a-z0-9-._~]*$/;

export async function installScripts(dir: string, lockfile: string): Promise<InstallScripts> {
  const pkg = parseObject(await readFileIfExists(join(dir, 'package.json')));
  const scripts = (pkg?.scripts ?? {}) as Record<string, unknown>;
  const root = ROOT_LIFECYCLE.filter((name) => typeof scripts[name] === 'string' && scripts[name].trim() !== '');
  if (!/(?:^|\/)(?:package-lock|npm-shrinkwrap)\.json$/.test(lockfile)) return { root, dependencies: [], known: false };
  const lock = parseObject(await readFileIfExists(lockfile));
  const packages = (lock?.packages ?? {}) as Record<string, { hasInstallScript?: unknown }>;
  const names = new Set<string>();
  for (const [path, entry] of Object.entries(packages)) {
    if (path === '' || entry?.hasInstallScript !== true) continue;
    const name = packageNameOf(path);
    // A name npm would not accept means a lockfile duet cannot vouch for: no cache then.
    if (!PACKAGE_NAME.test(name)) return { root, dependencies: [], known: false };
    names.add(name);
  }
  return { root, dependencies: [...names].sort(), known: true };
}

function parseObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The package a lockfile path is ("node_modules/a/node_modules/@s/b" -> "@s/b"). */
export function packageNameOf(path: string): string {
  return path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length).replace(/\/$/, '');
}
