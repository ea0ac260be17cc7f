import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { runArgv, type OutputSink } from '../util/run.js';
import { runBuildShell, runBuildStep, type BuildStepOptions } from './build-step.js';
import { missingDevPackages, restoreDevDependencies } from './dev-dependencies.js';
import { discardEarlyCopy, takeEarlyCopy, type EarlyCopy } from './early-copy.js';
import { findLockfile, installFingerprint } from './install-key.js';
import { installScripts, packageNameOf } from './install-scripts.js';
import { readInstallStamp, writeInstallStamp } from './install-stamp.js';
import { nodeRuntime, type NodeRuntime } from './node-runtime.js';
import { openWorktreeToGroup } from './worktree-access.js';
import { installCommand, installEnv } from './package-manager.js';

/**
 * Dependencies are installed per color, in that color's checkout. An install is skipped when the
 * checkout's node_modules was made from the same lockfile with the same command, and copied from
 * the other color when that one was: both are much faster than a fresh `npm ci`, and a copy (never
 * hardlinks) keeps the live color's files out of reach of whatever the new version does.
 */

export type InstallOutcome = 'installed' | 'skipped' | 'copied';

interface InstallOptions {
  output?: OutputSink;
  /** Added to duet's environment for the install command. */
  env?: Record<string, string>;
  /** A copy of the other color's node_modules begun before the checkout (startEarlyCopy). */
  early?: EarlyCopy;
  /** The Node.js the install runs, asked ahead (nodeRuntime); asked here when not given. */
  runtime?: Promise<NodeRuntime>;
}

export async function installDependencies(app: AppConfig, color: Color, options: InstallOptions): Promise<InstallOutcome> {
  const checkout = app.paths.checkout[color];
  const stampPath = app.paths.installStamp[color];
  const nodeModules = join(checkout, 'node_modules');
  const command = installCommand(app, checkout);
  const { env, withDev } = installEnv(options.env ?? {}, checkout, command);
  const run: InstallRun = { app, command, env, withDev, output: options.output, group: app.paths.stepGroup[color] };
  const runtime = await (options.runtime ?? nodeRuntime(env.PATH ?? process.env.PATH)).catch((error: Error) => {
    options.output?.write(`duet: cannot tell which Node.js runs the install (${error.message}); not using the install cache\n`);
    return undefined;
  });
  const fingerprint = runtime && (await installFingerprint(checkout, { command, env, runtime }));

  if (fingerprint === undefined) {
    // Without a lockfile nothing tells whether the dependencies changed: always install.
    if (runtime) options.output?.write(`duet: no lockfile in ${checkout}; running the install command\n`);
    await rm(stampPath, { force: true });
    await runInstall(checkout, run);
    return 'installed';
  }

  const scripts = await installScripts(checkout, findLockfile(checkout)!);
  const noCache = !scripts.known
    ? `${basename(findLockfile(checkout)!)} does not say which dependencies run install scripts`
    : scripts.root.length > 0
      ? `package.json runs ${scripts.root.join(', ')} at install time, whose result may depend on this commit's files`
      : undefined;
  if (noCache) {
    await discardEarlyCopy(options.early);
    options.output?.write(`duet: not using the install cache: ${noCache}; a fresh install runs it for this commit\n`);
    await rm(stampPath, { force: true });
    await runInstall(checkout, run);
    await writeInstallStamp(stampPath, { fingerprint, installedAt: new Date().toISOString(), nodeModules: existsSync(nodeModules) });
    return 'installed';
  }

  const stamp = await readInstallStamp(stampPath);
  if (stamp?.fingerprint === fingerprint && (existsSync(nodeModules) || !stamp.nodeModules)) {
    await discardEarlyCopy(options.early);
    options.output?.write(
      `duet: dependencies of ${color} are up to date (same lockfile, package.json, .npmrc, install command and environment, Node.js ${runtime?.version})\n`,
    );
    const missing = withDev ? await missingDevPackages(checkout) : [];
    if (scripts.dependencies.length > 0 || missing.length > 0) {
      // A failure half-way must not leave a tree that the next deploy takes for done.
      await rm(stampPath, { force: true });
      await completeReusedTree(checkout, scripts.dependencies, missing, run);
      const { pruned: _, ...unpruned } = stamp;
      await writeInstallStamp(stampPath, missing.length > 0 ? unpruned : stamp);
    }
    return 'skipped';
  }

  // From here on the stamp is stale: remove it first, so a crash mid-way is never taken for done.
  await rm(stampPath, { force: true });
  await mkdir(dirname(stampPath), { recursive: true });

  const copiedFrom = await copyFromOtherColor(app, color, options.early, fingerprint, run);
  if (copiedFrom) {
    await completeReusedTree(checkout, scripts.dependencies, withDev ? await missingDevPackages(checkout) : [], run);
    await writeInstallStamp(stampPath, { fingerprint, installedAt: new Date().toISOString(), nodeModules: true, copiedFrom });
    return 'copied';
  }

  await runInstall(checkout, run);
  await writeInstallStamp(stampPath, { fingerprint, installedAt: new Date().toISOString(), nodeModules: existsSync(nodeModules) });
  return 'installed';
}

/**
 * The other color's node_modules, when it was installed with this fingerprint, becomes this
 * color's: the early copy when it is of that tree, else a copy made now. The color it came from,
 * or undefined when neither fits.
 */
async function copyFromOtherColor(
  app: AppConfig,
  color: Color,
  early: EarlyCopy | undefined,
  fingerprint: string,
  run: InstallRun,
): Promise<Color | undefined> {
  const nodeModules = join(app.paths.checkout[color], 'node_modules');
  if (early?.fingerprint === fingerprint && (await early.done)) {
    run.output?.write(`duet: node_modules copied from ${early.from} while the checkout was made (same lockfile and install command)\n`);
    await takeEarlyCopy(app, color, early, nodeModules);
    return early.from;
  }
  await discardEarlyCopy(early);

  const other = otherColor(color);
  const otherModules = join(app.paths.checkout[other], 'node_modules');
  const otherStamp = await readInstallStamp(app.paths.installStamp[other]);
  if (otherStamp?.fingerprint !== fingerprint || !existsSync(otherModules)) return undefined;
  run.output?.write(`duet: copying node_modules from ${other} (same lockfile and install command)\n`);
  await rm(nodeModules, { recursive: true, force: true });
  // A real copy (reflinked where the filesystem can): the two colors must never share files.
  await runArgv(['cp', '-a', '--reflink=auto', '--', otherModules, nodeModules], {
    step: 'install',
    output: run.output,
    group: run.group,
    hint: `copying ${otherModules} failed; check free disk space`,
  });
  return other;
}

/** One install's command and environment, as the cache key saw them. */
interface InstallRun {
  app: AppConfig;
  command: string;
  env: Record<string, string>;
  /** The environment asks for the devDependencies (the operator did not choose otherwise). */
  withDev: boolean;
  output?: OutputSink;
  /** Where the running command's process group is recorded (the color's stepGroup). */
  group: string;
}

/** An install command runs the app's code: the app's environment, in the color's recorded step group, as a build step. */
function appStep(checkout: string, run: InstallRun, hint: string): BuildStepOptions {
  return { step: 'install', cwd: checkout, env: run.env, output: run.output, group: run.group, hint };
}

async function runInstall(checkout: string, run: InstallRun): Promise<void> {
  await openForAppUser(checkout, run);
  const dev = run.withDev && Object.keys(run.env).includes('npm_config_include') ? ' (with npm_config_include=dev: the build gets the devDependencies)' : '';
  run.output?.write(`$ ${run.command}${dev}\n`);
  await runBuildShell(
    run.app,
    run.command,
    appStep(checkout, run, `the install command failed in ${checkout}; fix the app's dependencies or "install" in duet.yml (the live color is untouched)`),
  );
}

/** app_user: a node_modules duet put in place (a copy, one from before app_user) opens to the app user's install. */
async function openForAppUser(checkout: string, run: InstallRun): Promise<void> {
  if (run.app.stepSocket !== undefined) await openWorktreeToGroup(checkout);
}

/**
 * A skipped or copied tree is made equal to a fresh install's: the devDependencies a prune
 * removed come back, and the dependencies' install scripts run again, since what they made
 * belongs to another commit (Prisma's client from another schema). Those just put back ran theirs.
 */
async function completeReusedTree(checkout: string, scriptNames: string[], missingDev: string[], run: InstallRun): Promise<void> {
  await openForAppUser(checkout, run);
  if (missingDev.length > 0) await restoreDevDependencies(checkout, missingDev, run);
  const restored = new Set(missingDev.map(packageNameOf));
  const names = scriptNames.filter((name) => !restored.has(name));
  if (names.length === 0) return;
  run.output?.write(`duet: running the install scripts of ${names.join(', ')} again for this commit\n$ npm rebuild ${names.join(' ')}\n`);
  await runBuildStep(
    run.app,
    ['npm', 'rebuild', ...names],
    appStep(checkout, run, `an install script of a dependency failed in ${checkout} (the live color is untouched)`),
  );
}
