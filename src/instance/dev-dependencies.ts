import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { readFileIfExists } from '../util/atomic-file.js';
import type { OutputSink } from '../util/run.js';
import { runBuildStep } from './build-step.js';
import { findLockfile } from './install-key.js';
import { readInstallStamp, writeInstallStamp } from './install-stamp.js';
import { packageManagerOf, pruneEnv } from './package-manager.js';

const NPM_LOCKFILE = /(?:^|\/)(?:package-lock|npm-shrinkwrap)\.json$/;

/**
 * The packages of an npm lockfile that only the devDependencies need (`"dev": true`: what `npm
 * prune --omit=dev` removes), as paths under the project ("node_modules/typescript"). undefined
 * for a lockfile that does not say (not npm's, or unreadable).
 */
async function devPackagePaths(lockfile: string): Promise<string[] | undefined> {
  if (!NPM_LOCKFILE.test(lockfile)) return undefined;
  const text = await readFileIfExists(lockfile);
  if (text === undefined) return undefined;
  try {
    const packages = ((JSON.parse(text) as { packages?: unknown }).packages ?? {}) as Record<string, { dev?: unknown; link?: unknown }>;
    // Only paths npm itself would write: a lockfile is input, and these become file system paths.
    return Object.entries(packages)
      .filter(([path, entry]) => entry?.dev === true && entry.link !== true && /^(?:node_modules\/(?:@[^/.][^/]*\/)?[^/.][^/]*\/?)+$/.test(path))
      .map(([path]) => path);
  } catch {
    return undefined;
  }
}

/** The dev packages the tree in `checkout` lacks: a pruned tree (or one pruned half-way) lacks them. */
export async function missingDevPackages(checkout: string): Promise<string[]> {
  const lockfile = findLockfile(checkout);
  const paths = lockfile ? await devPackagePaths(lockfile) : undefined;
  return (paths ?? []).filter((path) => !existsSync(join(checkout, path, 'package.json')));
}

/**
 * Put back the devDependencies of a pruned tree (a skipped install, or one copied from the other
 * color), so the build finds them as after a fresh `npm ci`. `npm install` adds only what is
 * missing, from the lockfile, and runs the install scripts of what it adds; `--no-save` leaves the
 * lockfile as committed. Much cheaper than installing everything again (see the bench).
 */
export async function restoreDevDependencies(
  checkout: string,
  missing: string[],
  options: { app: AppConfig; env: Record<string, string>; output?: OutputSink; group?: string },
): Promise<void> {
  const argv = ['npm', 'install', '--include=dev', '--no-save', '--no-audit', '--no-fund', '--prefer-offline'];
  options.output?.write(
    `duet: ${missing.length} devDependencies were pruned after the last build here; putting them back for the build\n$ ${argv.join(' ')}\n`,
  );
  await runBuildStep(options.app, argv, {
    step: 'install',
    cwd: checkout,
    env: options.env,
    output: options.output,
    group: options.group,
    hint: `putting back the devDependencies in ${checkout} failed (the live color is untouched); a deploy after \`rm -rf ${join(checkout, 'node_modules')}\` installs afresh`,
  });
}

export type PruneOutcome = 'pruned' | 'nothing to prune' | 'off' | 'cannot prune';

/**
 * After a successful build: remove what only the build needed (`prune`, default true). The
 * install stamp goes first and comes back marked `pruned`, so a crash half-way through leaves a
 * tree with no stamp, which the next deploy installs afresh instead of trusting.
 */
export async function pruneDevDependencies(app: AppConfig, color: Color, options: { env: Record<string, string>; output?: OutputSink }): Promise<PruneOutcome> {
  if (!app.prune) return 'off';
  const checkout = app.paths.checkout[color];
  if (!existsSync(join(checkout, 'node_modules'))) return 'nothing to prune';
  const manager = packageManagerOf(checkout);
  const lockfile = findLockfile(checkout);
  const devPaths = lockfile ? await devPackagePaths(lockfile) : undefined;
  // npm's lockfile says what there is to prune: none of it present (no devDependencies, or the
  // install left them out) means nothing to do, and no npm process to wait for.
  if (devPaths && !devPaths.some((path) => existsSync(join(checkout, path)))) return 'nothing to prune';
  if (!manager.prune) {
    options.output?.write(
      `duet: ${manager.name} cannot prune devDependencies here (yarn 2+ has no prune); the app runs with them (set prune: false to silence this)\n`,
    );
    return 'cannot prune';
  }
  const stampPath = app.paths.installStamp[color];
  const stamp = await readInstallStamp(stampPath);
  await rm(stampPath, { force: true });
  options.output?.write(`duet: removing what only the build needed (prune: true)\n$ ${manager.prune.join(' ')}\n`);
  await runBuildStep(app, manager.prune, {
    step: 'prune',
    cwd: checkout,
    group: app.paths.stepGroup[color],
    env: pruneEnv(options.env, manager),
    output: options.output,
    hint: `pruning devDependencies in ${checkout} failed (the live color is untouched); set prune: false to run with them`,
  });
  if (stamp) await writeInstallStamp(stampPath, { ...stamp, pruned: true });
  return 'pruned';
}
