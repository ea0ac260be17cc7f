import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import { runArgv, type OutputSink } from '../util/run.js';
import { stopRecordedGroup } from '../util/step-group.js';
import { runBuildShell, runBuildStep, type BuildStepOptions } from './build-step.js';
import { missingDevPackages, restoreDevDependencies } from './dev-dependencies.js';
import { findLockfile, installFingerprint } from './install-key.js';
import { installScripts, packageNameOf } from './install-scripts.js';
import { readInstallStamp, writeInstallStamp } from './install-stamp.js';
import { nodeRuntime, type NodeRuntime } from './node-runtime.js';
import { openWorktreeToGroup } from './worktree-access.js';
import { installCommand, installEnv } from './package-manager.js';

export { findLockfile, installFingerprint, LOCKFILES } from './install-key.js';
export { readInstallStamp, type InstallStamp } from './install-stamp.js';

/**
 * Dependencies are installed per color, in that color's checkout. An install is skipped when the
 * checkout's node_modules was made from the same lockfile with the same command, and copied from
 * the other color when that one was: both are much faster than a fresh `npm ci`, and a copy (never
 * hardlinks) keeps the live color's files out of reach of whatever the new version does.
 */

export type InstallOutcome = 'installed' | 'skipped' | 'copied';

export interface InstallOptions {
  output?: OutputSink;
  /** Added to duet's environment for the install command. */
  env?: Record<string, string>;
  /** A copy of the other color's node_modules begun before the checkout (startEarlyCopy). */
  early?: EarlyCopy;
  /** The Node.js the install runs, asked ahead (nodeRuntime); asked here when not given. */
  runtime?: Promise<NodeRuntime>;
}

/**
 * A copy of the other color's node_modules, made before the new commit is even fetched, on the
 * bet that its lockfile is the other color's: at the end of the deploy that changed the other
 * color's dependencies (copyAhead), or else begun at the start of this color's update, to run
 * alongside fetch and checkout instead of after them. Made only when this color's dependencies
 * differ from the other's -- the case where the next deploy into this color copies -- so the
 * usual deploy (both colors on the same lockfile: a skip) never pays for one.
 */
export interface EarlyCopy {
  fingerprint: string;
  from: Color;
  path: string;
  /** Resolves true when the copy is complete, false when it failed (the plain path then runs). */
  done: Promise<boolean>;
  /** Made by copyAhead at the end of an earlier deploy, complete when handed out. */
  madeAhead?: true;
}

/** Where an early copy is made: beside the checkouts, on the same file system, for a rename. */
export function earlyCopyPath(app: AppConfig, color: Color): string {
  return join(app.paths.root, 'run', `${color}.node_modules.next`);
}

/** Written once a copy made ahead (copyAhead) is complete, beside it: what it is a copy of. */
const markerOf = (copyPath: string): string => `${copyPath}.json`;

function readyMarkerPath(app: AppConfig, color: Color): string {
  return markerOf(earlyCopyPath(app, color));
}

interface ReadyMarker {
  fingerprint: string;
  from: Color;
}

/**
 * Start copying the other color's node_modules for `color`, when their dependencies differ; or
 * hand out the copy made ahead by copyAhead when it is of exactly the tree the other color has
 * now. undefined when there is nothing to copy.
 */
export async function startEarlyCopy(app: AppConfig, color: Color, output?: OutputSink): Promise<EarlyCopy | undefined> {
  const path = earlyCopyPath(app, color);
  // A copy a killed duet left running would go on writing into the tree removed and made anew below.
  const leftover = await stopRecordedGroup(app.paths.copyGroup[color]);
  if (leftover) output?.write(`duet: stopped \`${leftover.command}\` (process group ${leftover.pgid}), left running by a duet that died\n`);
  const from = otherColor(color);
  const theirs = await readInstallStamp(app.paths.installStamp[from]);
  const ours = await readInstallStamp(app.paths.installStamp[color]);
  const source = join(app.paths.checkout[from], 'node_modules');
  const wanted = theirs?.nodeModules && theirs.fingerprint !== ours?.fingerprint && existsSync(source);
  const ready = await readReadyMarker(app, color);
  if (wanted && ready?.fingerprint === theirs.fingerprint && ready.from === from && existsSync(path)) {
    return { fingerprint: ready.fingerprint, from, path, done: Promise.resolve(true), madeAhead: true };
  }
  // Anything else there -- a copy a crashed deploy left half-made, one of a tree the other color
  // no longer has -- is never trusted. The marker goes first: a crash in between leaves no
  // marker beside a half-removed tree.
  await rm(readyMarkerPath(app, color), { force: true });
  await rm(path, { recursive: true, force: true });
  await removeReplacedModules(app, color);
  if (!wanted) return undefined;
  await mkdir(dirname(path), { recursive: true });
  const done = runArgv(['cp', '-a', '--reflink=auto', '--', source, path], { step: 'install', group: app.paths.copyGroup[color] }).then(
    () => true,
    () => false,
  );
  return { fingerprint: theirs.fingerprint, from, path, done };
}

/**
 * After a deploy into the other color changed its dependencies, copy them for `color` now, while
 * nobody waits on a switch, instead of during `color`'s next deploy: that deploy then only renames
 * the copy into place (when its lockfile is the one copied; otherwise the copy is removed). The
 * marker is written, temp-fsync-rename, only once the copy is complete, so a copy cut short by a
 * crash is never used. Returns whether it made one (false too when one was ready already);
 * never throws: it only saves time later.
 */
export async function copyAhead(app: AppConfig, color: Color): Promise<boolean> {
  try {
    const copy = await startEarlyCopy(app, color);
    if (!copy || copy.madeAhead || !(await copy.done)) return false;
    const marker: ReadyMarker = { fingerprint: copy.fingerprint, from: copy.from };
    await writeFileAtomic(readyMarkerPath(app, color), `${JSON.stringify(marker)}\n`);
    return true;
  } catch {
    return false;
  }
}

async function readReadyMarker(app: AppConfig, color: Color): Promise<ReadyMarker | undefined> {
  const text = await readFileIfExists(readyMarkerPath(app, color));
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<ReadyMarker>;
    return typeof value.fingerprint === 'string' && (value.from === 'blue' || value.from === 'green')
      ? { fingerprint: value.fingerprint, from: value.from }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Where the node_modules an early copy replaced waits to be removed (beside the early copy). */
function replacedModulesPath(app: AppConfig, color: Color): string {
  return `${earlyCopyPath(app, color)}.old`;
}

/**
 * Remove the node_modules an early copy replaced. Its thousands of files took ~180 ms to remove
 * here, on the deploy's path between the checkout and the build; the update now runs this
 * alongside the build instead, and waits for it before the color counts as prepared.
 */
export async function removeReplacedModules(app: AppConfig, color: Color): Promise<void> {
  await rm(replacedModulesPath(app, color), { recursive: true, force: true });
}

/** Wait for an early copy that is not used, and remove it. */
export async function discardEarlyCopy(copy: EarlyCopy | undefined): Promise<void> {
  if (!copy) return;
  await copy.done;
  await rm(markerOf(copy.path), { force: true });
  await rm(copy.path, { recursive: true, force: true });
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

  const early = options.early;
  if (early?.fingerprint === fingerprint && (await early.done)) {
    options.output?.write(`duet: node_modules copied from ${early.from} while the checkout was made (same lockfile and install command)\n`);
    // Renamed aside, not removed first: the new tree is in place at once, and the old one is
    // removed by removeReplacedModules, which the update runs alongside the build.
    const old = replacedModulesPath(app, color);
    await rm(old, { recursive: true, force: true });
    if (existsSync(nodeModules)) await rename(nodeModules, old);
    await rm(markerOf(early.path), { force: true });
    await rename(early.path, nodeModules);
    await completeReusedTree(checkout, scripts.dependencies, withDev ? await missingDevPackages(checkout) : [], run);
    await writeInstallStamp(stampPath, { fingerprint, installedAt: new Date().toISOString(), nodeModules: true, copiedFrom: early.from });
    return 'copied';
  }
  await discardEarlyCopy(early);

  const other = otherColor(color);
  const otherModules = join(app.paths.checkout[other], 'node_modules');
  const otherStamp = await readInstallStamp(app.paths.installStamp[other]);
  if (otherStamp?.fingerprint === fingerprint && existsSync(otherModules)) {
    options.output?.write(`duet: copying node_modules from ${other} (same lockfile and install command)\n`);
    await rm(nodeModules, { recursive: true, force: true });
    // A real copy (reflinked where the filesystem can): the two colors must never share files.
    await runArgv(['cp', '-a', '--reflink=auto', '--', otherModules, nodeModules], {
      step: 'install',
      output: options.output,
      group: run.group,
      hint: `copying ${otherModules} failed; check free disk space`,
    });
    await completeReusedTree(checkout, scripts.dependencies, withDev ? await missingDevPackages(checkout) : [], run);
    await writeInstallStamp(stampPath, { fingerprint, installedAt: new Date().toISOString(), nodeModules: true, copiedFrom: other });
    return 'copied';
  }

  await runInstall(checkout, run);
  await writeInstallStamp(stampPath, { fingerprint, installedAt: new Date().toISOString(), nodeModules: existsSync(nodeModules) });
  return 'installed';
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
