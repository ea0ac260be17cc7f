import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../test/support/git-repo.js';

/**
 * The benchmark's app (bench/app): it loads, connects, then listens and answers /health, like a
 * small real service (about half a second from spawn to listening on an idle machine).
 */

export const benchAppDir = (): string => join(repoRoot(), 'bench', 'app');

const APP_FILES = ['server.js', 'build.js', 'package.json', 'package-lock.json', '.gitignore'];

/** The app's files, to commit over test/fixtures/sample-app in the first version. */
export function appFiles(version: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of APP_FILES) files[name] = readFileSync(join(benchAppDir(), name), 'utf8');
  files.VERSION = `${version}\n`;
  return files;
}

/** The dependencies of the "real dependencies" app: a few common ones. */
export const DEPENDENCIES = ['express', 'pino', 'zod'] as const;

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  [key: string]: unknown;
}

/**
 * package.json and package-lock.json of an app depending on DEPENDENCIES, cut out of duet's own
 * lockfile: every package those reach, at the same paths and versions. The packages are then in
 * this machine's npm cache (duet itself was installed from them), so `npm ci --offline` works
 * without a network and measures the install, not the download.
 *
 * `variant` changes the lockfile's bytes (the root version) without changing what is installed:
 * a new lockfile fingerprint, so duet must install again. `extra` adds dependencies (one with an
 * install script, for the install section's second app).
 */
export function depsAppManifests(variant: number, extra: readonly string[] = []): { 'package.json': string; 'package-lock.json': string; count: number } {
  const wanted = [...DEPENDENCIES, ...extra];
  const lock = JSON.parse(readFileSync(join(repoRoot(), 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packages = lock.packages;
  const resolve = (from: string, name: string): string | undefined => {
    let base = from;
    for (;;) {
      const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (packages[candidate]) return candidate;
      if (!base) return undefined;
      const cut = base.lastIndexOf('/node_modules/');
      base = cut < 0 ? '' : base.slice(0, cut);
    }
  };
  const seen = new Set<string>();
  const queue = wanted.map((name) => resolve('', name));
  while (queue.length > 0) {
    const path = queue.pop();
    if (!path || seen.has(path)) continue;
    seen.add(path);
    const entry = packages[path]!;
    for (const dep of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) queue.push(resolve(path, dep));
  }
  const missing = wanted.filter((name) => !packages[`node_modules/${name}`]);
  if (missing.length) throw new Error(`duet's package-lock.json has no ${missing.join(', ')}`);

  const dependencies = Object.fromEntries(wanted.map((name) => [name, `^${packages[`node_modules/${name}`]!.version}`]));
  const version = `1.0.${variant}`;
  const manifest = {
    name: 'bench-deps-app',
    version,
    private: true,
    description: "The benchmark's app with real dependencies",
    scripts: { start: 'node server.js', build: 'node build.js' },
    dependencies,
  };
  const lockPackages: Record<string, LockEntry> = { '': { name: manifest.name, version, dependencies } };
  for (const path of [...seen].sort()) {
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = packages[path]!;
    lockPackages[path] = entry;
  }
  const lockfile = { name: manifest.name, version, lockfileVersion: 3, requires: true, packages: lockPackages };
  return {
    'package.json': `${JSON.stringify(manifest, null, 2)}\n`,
    'package-lock.json': `${JSON.stringify(lockfile, null, 2)}\n`,
    count: seen.size,
  };
}
