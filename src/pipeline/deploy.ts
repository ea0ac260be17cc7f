import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError, InvalidInputError } from '../errors.js';
import { checkedOutRevision, preloadGit, resolveRef, type ResolvedRef } from '../instance/checkout.js';
import { isFullObjectId, validateRefName } from '../instance/git-ref.js';
import { appSettings, configChangeOf, type AppSettings, type ConfigChange, type ConfigHashes } from '../instance/app-env.js';
import { copyAhead } from '../instance/early-copy.js';
import { readPrepared } from '../instance/prepared.js';
import { runRelease } from '../instance/release.js';
import { runnerOf } from '../instance/runner.js';
import { updateInstance } from '../instance/update.js';
import { switchOf } from '../switch/switch.js';
import { BREAKING_TRAILER, marksItselfBreaking, recordBreaking } from './breaking.js';
import { buildSlot } from './build-slot.js';
import { goLive } from './go-live.js';
import type { DeployObserver } from './observer.js';
import { runOperation } from './operation.js';
import type { DeployRun, StepResult } from './run.js';
import { connectWithin, liveColor } from './switch-step.js';
import { preloadRun } from '../util/run.js';
import { keepAfterWatch } from './releases.js';

interface DeployOptions {
  ref?: string;
  /** The commit the trigger already named (a push): deployed as is, no lookup. */
  pinnedSha?: string;
  /** pinnedSha even when its branch moved on: the commit whose CI passed (wait_for_checks), not a newer one. */
  exact?: boolean;
  /** Said in the journal's begin: why it runs as it does (CI not waited for). */
  reason?: string;
  /** An id handed out earlier (the queue's trigger id); a new one otherwise. */
  id?: string;
  /** false: fail at once if another deploy of this app holds the lock. */
  wait?: boolean;
  /** Gives up waiting for the lock (duet serve stopping); a deploy that holds it runs on. */
  signal?: AbortSignal;
  /** A breaking release (breaking.ts); a commit may also say so itself (`Duet-Breaking: true`). */
  breaking?: boolean;
  observer: DeployObserver;
  /**
   * `duet restart`: a config deploy of the live commit into the idle color, with the env files
   * and duet.yml as they are now, even when nothing changed. `ref` is ignored.
   */
  restart?: boolean;
}

export interface DeployResult {
  id: string;
  outcome: 'success' | 'noop';
  color: Color;
  sha: string;
  ms: number;
}

/** The ref deployed when none is given: the tip of the first branch the app deploys from. */
export function defaultRef(app: AppConfig): string {
  const branch = app.deploy_on.branches[0];
  if (!branch) throw new InvalidInputError(`${app.name} has no deploy_on.branches`, { step: 'resolve', hint: 'pass --ref REF' });
  return branch;
}

/**
 * lock -> resolve -> pick -> update -> release -> start -> health -> switch -> verify -> watch -> retire -> record.
 * Re-entrant: after a crash at any step, running it again converges, because every step first
 * checks whether the machine is already in the state it produces.
 */
export async function deploy(config: Config, app: AppConfig, options: DeployOptions): Promise<DeployResult> {
  // Refused before anything prints, locks or journals it: a bad ref is the caller's input error.
  const requested = options.restart ? 'the live commit' : validateRefName(options.ref ?? defaultRef(app));
  if (options.pinnedSha !== undefined && !isFullObjectId(options.pinnedSha)) {
    throw new InvalidInputError(`"${options.pinnedSha}" is not a full commit sha`, { step: 'resolve' });
  }
  preloadGit();
  preloadRun();
  const what = options.restart
    ? { command: 'restart', ref: null, reason: 'restart: the live commit with the configuration of now' }
    : { command: `deploy ${requested}`, ref: requested, ...(options.reason && { reason: options.reason }) };
  return runOperation(config, app, { ...options, ...what, kind: 'deploy', wait: options.wait ?? true }, async (run) => {
    const steps = options.restart ? await restartSteps(run) : await deploySteps(run, requested, options.pinnedSha, options);
    const result: DeployResult = { ...steps, id: run.id, ms: 0 };
    // Timed to the journal's end; the copy for the next deploy is no part of this one.
    const afterEnd = async () => {
      result.ms = run.elapsedMs;
      if (result.outcome !== 'success') return;
      await copyAheadForNextDeploy(run, result.color);
      // Passed its watch: kept for a rollback further back than the standby color.
      await keepAfterWatch(run.app, result.color, run.id, (line) => run.observer.note(line));
    };
    return { value: result, outcome: result.outcome, afterEnd };
  });
}

async function deploySteps(
  run: DeployRun,
  requested: string,
  pinnedSha: string | undefined,
  options: Pick<DeployOptions, 'breaking' | 'exact'>,
): Promise<Omit<DeployResult, 'id' | 'ms'>> {
  const { app } = run;
  const target = await run.step('resolve', `resolve ${requested}`, async () => {
    if (pinnedSha && options.exact) {
      validateRefName(requested);
      return { value: { sha: pinnedSha, ref: requested }, detail: `${requested} is ${pinnedSha} (its CI passed)` };
    }
    if (pinnedSha && !requested.startsWith('refs/heads/')) {
      validateRefName(requested);
      return { value: { sha: pinnedSha, ref: requested }, detail: `${requested} is ${pinnedSha} (named by the trigger)` };
    }
    if (pinnedSha) {
      // A branch push deploys the branch as it is now, never an older commit: a push whose turn
      // comes after a newer one (or an old signed body sent again under a new delivery id) must
      // not roll production back. The ls-remote costs what an unpinned resolve does.
      validateRefName(requested);
      const tip = await resolveRef(app.clone_url, requested);
      if (tip.sha === pinnedSha) return { value: tip, detail: `${requested} is ${pinnedSha} (named by the trigger, still the tip)` };
      run.observer.note(
        `${requested} moved on since this push: it named ${pinnedSha.slice(0, 7)}, the branch is now at ${tip.sha.slice(0, 7)}; deploying the tip`,
      );
      return { value: tip, detail: `${requested} is ${tip.sha} (the push named ${pinnedSha}, no longer the tip)` };
    }
    const resolved = await resolveRef(app.clone_url, requested);
    return { value: resolved, detail: `${resolved.ref} is ${resolved.sha}` };
  });
  await run.fact({ sha: target.sha, resolvedRef: target.ref });

  const live = await liveColor(run);
  const settings = await appSettings(app, 'update');
  if (live && (await liveRevision(app, live)) === target.sha) {
    const changed = await configChange(app, live, settings.hashes);
    if (!changed) {
      // Already live: either a repeated deploy, or a re-run after a crash past the switch. Finish
      // what a crashed run may have left (start, verify, retire) and say so.
      run.observer.note(`${target.sha.slice(0, 7)} (${requested}) is already live on ${live}`);
      await pickedFact(run, live, live);
      await goLive(run, live, target);
      await recordStep(run, `${requested} already live on ${live}`);
      return { outcome: 'noop', color: live, sha: target.sha };
    }
    run.observer.note(`${target.sha.slice(0, 7)} (${requested}) is live on ${live}, but its ${changed} changed since: deploying it again with the new one`);
  }
  return intoIdle(run, live, target, settings, requested, { breaking: options.breaking ?? false });
}

/** `duet restart`: the live commit, as the live color has it, into the idle color. */
async function restartSteps(run: DeployRun): Promise<Omit<DeployResult, 'id' | 'ms'>> {
  const { app } = run;
  const live = await liveColor(run);
  const target = await run.step('resolve', 'find the live commit', async () => {
    const record = live && ((await runnerOf(app).running(live)) ?? (await readPrepared(app, live)));
    if (!live || !record || record.sha === 'unknown') {
      throw new DuetError(`nothing of ${app.name} is live with a commit duet knows: there is nothing to restart`, {
        step: 'resolve',
        hint: 'run `duet deploy` first',
      });
    }
    return { value: { sha: record.sha, ref: record.ref }, detail: `${live} runs ${record.ref} (${record.sha})` };
  });
  await run.fact({ sha: target.sha, resolvedRef: target.ref });
  return intoIdle(run, live, target, await appSettings(app, 'update'), target.ref, { fresh: true });
}

/** pick -> update -> start -> health -> switch -> verify -> watch -> retire -> record. */
async function intoIdle(
  run: DeployRun,
  live: Color | undefined,
  target: { sha: string; ref: string },
  settings: AppSettings,
  requested: string,
  /**
   * fresh (restart): the idle color is started anew even when it runs the same commit and
   * configuration (a change duet cannot see, a file the app reads itself). breaking: --breaking.
   */
  options: { fresh?: boolean; breaking?: boolean } = {},
): Promise<Omit<DeployResult, 'id' | 'ms'>> {
  const { app, config } = run;
  const color = await run.step('pick', 'pick the idle color', () => pickIdle(run, live));
  await pickedFact(run, live ? otherColor(color) : null, color);
  // The commit's own word (a Duet-Breaking trailer) is read while it installs and builds, not
  // after: the release step only awaits it. Not asked when --breaking says so already.
  let trailer: Promise<boolean> | undefined;
  const marksItself = (): Promise<boolean> => (trailer ??= marksItselfBreaking(app.paths.checkout[color], target.sha));
  const readAhead = options.breaking ? undefined : () => void marksItself().catch(() => {});

  try {
    await run.step('update', `update ${color} to ${target.sha.slice(0, 7)}`, async () => {
      if (options.fresh) await runnerOf(app).stop(color);
      const slot = buildSlot(config, app, (line) => {
        run.log.line(line);
        run.observer.note(line);
      });
      const outcome = await updateInstance(app, color, target, run.log, { settings, buildSlot: slot, onCheckedOut: readAhead });
      if (outcome.kind === 'already-prepared') return { value: undefined, skipped: true, detail: `${color} already holds ${target.sha.slice(0, 7)}` };
      return { value: undefined, detail: `install ${outcome.install}${outcome.prune === 'pruned' ? ', devDependencies pruned' : ''}` };
    });
    const previous = live && (await liveRevision(app, otherColor(color)));
    await releaseStep(run, color, target, settings, previous, options.breaking ?? false, marksItself);
    await goLive(run, color, target);
  } catch (error) {
    await stopIdleAfterFailure(run, color);
    throw error;
  }
  await recordStep(run, `${requested} live on ${color}`);
  return { outcome: 'success', color, sha: target.sha };
}

/**
 * The app's release command, every time a deploy is about to start a color (a deploy resumed after
 * a crash runs it again: a migration must be idempotent). A rollback never runs it.
 */
async function releaseStep(
  run: DeployRun,
  color: Color,
  target: ResolvedRef,
  settings: AppSettings,
  previous: string | undefined,
  asked: boolean,
  marksItself: () => Promise<boolean>,
): Promise<void> {
  const { app } = run;
  const command = app.release;
  await run.step('release', command ? `run the release command in ${color}: ${command}` : 'no release command', async () => {
    // Recorded before the release changes anything: from here on, no rollback to `previous` without --force.
    const breaking = asked || (await marksItself());
    if (breaking) await recordBreaking(app, { sha: target.sha, before: previous ?? null, deploy: run.id, at: new Date().toISOString() });
    const how = breaking
      ? `; a breaking release (${asked ? '--breaking' : `${BREAKING_TRAILER}: true`}): no fallback to ${otherColor(color)}, stopped after the drain`
      : '';
    if (!command) return { value: undefined, skipped: !breaking, detail: `no release command in duet.yml${how}` };
    await runRelease(app, color, target, settings, previous, run.log);
    return { value: undefined, detail: `\`${command}\` exited 0${how}` };
  });
}

/**
 * The color to update is the one that does not answer the public port. That is the idle one,
 * unless the live color is down and the idle one answers through nginx's fallback: updating it
 * would stop the only color that serves. Then the idle color is made live first (switch and
 * verify) and the dead one is updated. A re-run after a crash finds the idle color live already.
 */
async function pickIdle(run: DeployRun, live: Color | undefined): Promise<StepResult<Color>> {
  const { app } = run;
  if (!live) return { value: 'blue', detail: 'nothing is live yet, starting with blue' };
  const idle = otherColor(live);
  if ((await switchOf(app).servingColor()) !== idle) return { value: idle, detail: `${live} is live, ${idle} is idle` };
  run.observer.note(`${live} (live) is down and ${idle} answers through the fallback: making ${idle} live before updating ${live}`);
  await connectWithin(run, idle);
  return { value: live, detail: `${live} (live) was down and ${idle} answered through the fallback: ${idle} made live, ${live} is updated` };
}

/**
 * The color just left is the next deploy's target. When this deploy changed the dependencies,
 * they are copied for it now, after the switch and the journal's end (nobody waits on traffic),
 * but before the lock is released, so that no deploy touches either color meanwhile.
 */
async function copyAheadForNextDeploy(run: DeployRun, live: Color): Promise<void> {
  const next = otherColor(live);
  const started = Date.now();
  if (await copyAhead(run.app, next)) {
    run.observer.note(
      `copied ${live}'s node_modules for ${next}'s next deploy in ${Date.now() - started} ms (it only renames them into place if its lockfile is the same)`,
    );
  }
}

/**
 * What of the configuration changed since the color was built or started: undefined when
 * nothing did, 'environment' when only the env files did, else 'configuration'.
 */
async function configChange(app: AppConfig, color: Color, hashes: ConfigHashes): Promise<ConfigChange | undefined> {
  const [prepared, running] = await Promise.all([readPrepared(app, color), runnerOf(app).running(color)]);
  return configChangeOf(hashes, prepared, running);
}

/** The commit a color runs, or if stopped, the commit checked out in its directory. */
export async function liveRevision(app: AppConfig, color: Color): Promise<string | undefined> {
  return (await runnerOf(app).running(color))?.sha ?? (await checkedOutRevision(app.paths.checkout[color]));
}

/** The run's target, picked once: journaled, and told to whoever waits to name it (the queue). */
export async function pickedFact(run: DeployRun, from: Color | null, to: Color, revision?: { sha: string; resolvedRef: string }): Promise<void> {
  await run.fact({ ...revision, from, to });
  run.observer.picked?.(to);
}

export async function recordStep(run: DeployRun, detail: string): Promise<void> {
  await run.step('record', 'record the outcome', async () => ({ value: undefined, detail }));
}

/** A deploy that failed must leave only the live color running: the idle one is stopped. */
async function stopIdleAfterFailure(run: DeployRun, color: Color): Promise<void> {
  const live = await liveColor(run);
  if (live === color) return; // failed after the switch and could not switch back: keep serving
  const outcome = await runnerOf(run.app)
    .stop(color)
    .catch(() => 'unknown');
  run.log.line(`stopped the idle color ${color} after the failure (${outcome})`);
}
