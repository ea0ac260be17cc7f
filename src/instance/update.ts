import { rm } from 'node:fs/promises';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import type { OutputSink } from '../util/run.js';
import { runBuildShell, waitForFreeMemory } from './build-step.js';
import { stopRecordedGroup } from '../util/step-group.js';
import { checkedOutRevision, checkOutCommit, cleanCheckout, fetchCommit, hasOwnRepository, type ResolvedRef } from './checkout.js';
import { artifactPath, downloadArtifact, unpackArtifact } from './artifact.js';
import { appBuildEnv, appSettings, type AppSettings } from './app-env.js';
import { requireSecrets } from './app-secrets.js';
import { pruneDevDependencies, type PruneOutcome } from './dev-dependencies.js';
import { discardEarlyCopy, removeReplacedModules, startEarlyCopy } from './early-copy.js';
import { installDependencies, type InstallOutcome } from './install.js';
import { nodeRuntime } from './node-runtime.js';
import { clearPrepared, markPrepared, readPrepared, type PreparedRecord } from './prepared.js';
import { foreignRepository, giveBackToGroup, openWorktreeToGroup, removeForeignCheckout } from './worktree-access.js';
import { crashPoint } from '../util/crash-point.js';
import { runnerOf } from './runner.js';

/**
 * build_limits.concurrency: taken before the install, given back after the prune, so that the
 * installs and builds of several apps run one after the other. Kept by the pipeline (one slot
 * file per build across processes); resolves to the slot's release once one is free.
 */
export type BuildSlot = () => Promise<() => Promise<void>>;

export type UpdateOutcome = { kind: 'already-prepared' } | { kind: 'updated'; install: InstallOutcome; prune: PruneOutcome };

/**
 * Wait for every one of `work`, then throw the first failure: nothing is left running in the
 * background (a git still writing .git after the deploy gave up and released the lock).
 */
async function allSettled(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The release a color's checkout holds, if it was completely prepared and is still checked out. */
export async function preparedRelease(app: AppConfig, color: Color): Promise<PreparedRecord | undefined> {
  const prepared = await readPrepared(app, color);
  if (!prepared) return undefined;
  // A color that runs the prepared commit was started from this checkout, and duet stops a color
  // before it touches its checkout: git need not be asked (a rollback to a warm standby is
  // faster without it).
  if ((await runnerOf(app).running(color))?.sha === prepared.sha) return prepared;
  return (await checkedOutRevision(app.paths.checkout[color])) === prepared.sha ? prepared : undefined;
}

/** Whether the color's checkout already holds `sha`, completely installed and built with the build configuration `config`. */
async function isPrepared(app: AppConfig, color: Color, sha: string, config: string): Promise<boolean> {
  const prepared = await preparedRelease(app, color);
  return prepared?.sha === sha && prepared.config === config;
}

interface UpdateOptions {
  settings?: AppSettings;
  buildSlot?: BuildSlot;
  /** Told once the commit is checked out and cleaned, before the install: git may read it meanwhile. */
  onCheckedOut?: () => void;
}

/**
 * `update-instance`: stop the color if it runs (while the commit is fetched), check out the commit
 * into its directory, install (with the devDependencies), build, prune them; with source:
 * release_asset, unpack the release's artifact and install the production dependencies instead.
 * Skipped entirely when the checkout is already prepared for that commit with the build
 * configuration of now. A `secrets` name the env files lack fails it first.
 */
export async function updateInstance(
  app: AppConfig,
  color: Color,
  target: ResolvedRef,
  output?: OutputSink,
  options: UpdateOptions = {},
): Promise<UpdateOutcome> {
  const settings = options.settings ?? (await appSettings(app, 'update'));
  await requireSecrets(app, settings.files, 'update');
  // First: an install or build that a killed duet left running would race this one in the checkout.
  const leftover = await stopRecordedGroup(app.paths.stepGroup[color]);
  if (leftover)
    output?.write(
      `duet: stopped \`${leftover.command}\` (process group ${leftover.pgid}, since ${leftover.since}), left running in ${color} by a duet that died\n`,
    );
  const dir = app.paths.checkout[color];
  const appUser = app.appUser !== undefined;
  if (appUser) await replaceForeignCheckout(app, color, dir, output);
  if (await isPrepared(app, color, target.sha, settings.hashes.build)) return { kind: 'already-prepared' };
  await clearPrepared(app, color);
  // A prebuilt artifact: production dependencies only, since nothing is built here.
  const prebuilt = app.source !== 'git';
  const env: Record<string, string> = { ...appBuildEnv(app, color, target, settings.files), ...(prebuilt ? { npm_config_omit: 'dev' } : {}) };
  // Run while git fetches and checks out: a copy used by the install when the lockfile matches,
  // and the question which Node.js the install runs (part of the install cache's key).
  const early = await startEarlyCopy(app, color, output);
  const runtime = nodeRuntime(env.PATH ?? process.env.PATH);
  runtime.catch(() => {}); // reported by the install, which awaits it
  let install: InstallOutcome;
  let releaseSlot: (() => Promise<void>) | undefined;
  try {
    // The fetch writes only .git, so meanwhile the old instance stops and then its leftovers are
    // cleaned away (the clean is a git process of its own); the checkout waits for both.
    // Decided before the fetch starts, which runs `git init` in a directory without a repository.
    const cleanFirst = hasOwnRepository(dir);
    const stopThenClean = async (): Promise<void> => {
      await runnerOf(app).stop(color);
      if (cleanFirst && appUser) await giveBackToGroup(app, dir);
      if (cleanFirst) await cleanCheckout(dir, { output });
    };
    // The artifact downloads alongside the fetch; it is unpacked once the commit is checked out.
    const artifact = prebuilt ? downloadArtifact(app, color, target, output) : undefined;
    await allSettled([stopThenClean(), fetchCommit(dir, app.clone_url, target, { output }), ...(artifact ? [artifact] : [])]);
    await checkOutCommit(dir, target, { output });
    crashPoint('update:checked-out');
    // A new repository is cleaned after its first checkout: its directory may hold strays.
    if (!cleanFirst) await cleanCheckout(dir, { output });
    options.onCheckedOut?.();
    if (artifact) await unpackArtifact(app, color, await artifact, output);
    // app_user: the install and build, as that user, write into the tree.
    if (appUser) await openWorktreeToGroup(dir);
    releaseSlot = await options.buildSlot?.();
    await waitForFreeMemory(app, output);
    install = await installDependencies(app, color, { output, env, early, runtime });
  } catch (error) {
    await releaseSlot?.();
    // An archive downloaded for a checkout that failed is not left on the disk.
    if (prebuilt) await rm(artifactPath(app, color), { force: true });
    throw error;
  } finally {
    // Whatever happened, an early copy that was not used goes (a no-op when it was).
    await discardEarlyCopy(early);
  }
  let prune: PruneOutcome;
  try {
    // No build for an artifact; the prune still runs: pnpm's and yarn's default installs take the
    // devDependencies whatever npm_config_omit says (npm's leaves none: nothing to prune, no process).
    prune = prebuilt
      ? await removeReplacedModules(app, color).then(() => pruneDevDependencies(app, color, { env, output }))
      : await buildAndPrune(app, color, target, env, output);
  } finally {
    await releaseSlot?.();
  }
  await markPrepared(app, color, { sha: target.sha, ref: target.ref, config: settings.hashes.build });
  return { kind: 'updated', install, prune };
}

/** app_user: a checkout whose repository another user owns is stopped and removed, to be made anew. */
async function replaceForeignCheckout(app: AppConfig, color: Color, dir: string, output?: OutputSink): Promise<void> {
  const foreign = await foreignRepository(dir);
  if (foreign === undefined) return;
  await runnerOf(app).stop(color);
  await clearPrepared(app, color);
  await removeForeignCheckout(app, dir, foreign, output);
}

async function buildAndPrune(app: AppConfig, color: Color, target: ResolvedRef, env: Record<string, string>, output?: OutputSink): Promise<PruneOutcome> {
  const dir = app.paths.checkout[color];
  // The node_modules an early copy replaced is removed while the build runs (it is outside the checkout).
  const removal = removeReplacedModules(app, color);
  try {
    if (app.build.trim()) {
      await runBuildShell(app, app.build, {
        step: 'build',
        cwd: dir,
        env,
        output,
        group: app.paths.stepGroup[color],
        hint: `the build of ${target.ref} failed in ${dir}; live traffic is untouched`,
      });
    }
  } finally {
    await removal;
  }
  return pruneDevDependencies(app, color, { env, output });
}
