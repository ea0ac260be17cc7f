import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError, NotLiveError } from '../errors.js';
import { validateCommitPrefix } from '../instance/git-ref.js';
import { appSettings } from '../instance/app-env.js';
import type { PreparedRecord } from '../instance/prepared.js';
import { preparedRelease, updateInstance } from '../instance/update.js';
import { switchOf } from '../switch/switch.js';
import { liveRevision, pickedFact, type DeployResult } from './deploy.js';
import { runnerOf } from '../instance/runner.js';
import { describeTarget, pickRelease, type RollbackTarget } from './release-pick.js';
import { keepAfterWatch, markBad, putBack, restoreInto, type KeptRelease } from './releases.js';
import { liveColor } from './switch-step.js';
import { readBreaking } from './breaking.js';
import { goLive } from './go-live.js';
import type { DeployObserver } from './observer.js';
import { runOperation } from './operation.js';
import type { DeployRun, StepResult } from './run.js';

/**
 * What a rollback would undo: the live color (what nginx points at) and the commit it runs, or
 * has checked out, read from the machine.
 */
export async function liveCommit(config: Config, app: AppConfig): Promise<{ color: Color; sha: string }> {
  const color = await switchOf(app).configuredColor(config);
  if (!color) throw new DuetError(`nothing is live for ${app.name}: there is nothing to roll back from`, { step: 'pick', hint: 'run `duet deploy` first' });
  const sha = await liveRevision(app, color);
  if (!sha) {
    throw new DuetError(`${color} is live for ${app.name} but holds no commit duet can read: there is nothing to roll back from`, {
      step: 'pick',
      hint: 'deploy a known-good ref instead: duet deploy --ref <tag>',
    });
  }
  return { color, sha };
}

/**
 * The live commit, when it is `from` (a commit id, whole or abbreviated; null or anything else is
 * an InvalidInputError); else NotLiveError. Naming what it undoes is what keeps two rollbacks of
 * one bad deploy from undoing each other.
 */
export async function liveCommitIs(config: Config, app: AppConfig, from: string | null): Promise<{ color: Color; sha: string }> {
  const expected = validateCommitPrefix(from, 'from');
  const live = await liveCommit(config, app);
  if (!live.sha.startsWith(expected)) throw new NotLiveError(app.name, expected, live);
  return live;
}

/**
 * What the queue checks before it accepts a rollback: `from` is live, and the kept release it
 * names passes its checks. The run checks both again under the app's lock.
 */
export async function rollbackPossible(config: Config, app: AppConfig, from: string | null, target: RollbackTarget | undefined): Promise<void> {
  const live = await liveCommitIs(config, app, from);
  if (target) await pickRelease(app, live.sha, target);
}

/**
 * Switch back to the other color, which still holds the previous release: start it if it was
 * stopped, health-check it, switch. Nothing is fetched or built. Only while `from` is live, which
 * is checked under the app's lock: a second rollback of the same deploy changes nothing.
 */
export async function rollback(
  config: Config,
  app: AppConfig,
  options: {
    from: string | null;
    /** A kept release (releases.ts) instead of the standby color's. */
    target?: RollbackTarget;
    wait?: boolean;
    signal?: AbortSignal;
    observer: DeployObserver;
    id?: string;
    force?: boolean;
  },
): Promise<DeployResult> {
  const command = `rollback${options.target ? ` ${describeTarget(options.target)}` : ''}`;
  return runOperation(
    config,
    app,
    { kind: 'rollback', command, id: options.id, wait: options.wait ?? true, signal: options.signal, observer: options.observer },
    async (run) => {
      const { color: live, sha: liveSha } = await liveCommitIs(config, app, options.from);
      run.carried.live = live;
      const target = otherColor(live);
      const restored = options.target
        ? await restoreSteps(run, live, liveSha, options.target, options.force)
        : await standbySteps(run, target, liveSha, options.force);
      await run.step('record', 'record the outcome', async () => {
        // So that a second `--steps 1` walks further back instead of returning to it.
        const marked = await markBad(app, liveSha, run.id);
        return { value: undefined, detail: `rolled back to ${restored.ref} on ${target}${marked ? `; ${liveSha.slice(0, 7)} marked bad` : ''}` };
      });
      const result: DeployResult = { id: run.id, outcome: 'success', color: target, sha: restored.sha, ms: 0 };
      const afterEnd = async () => {
        result.ms = run.elapsedMs;
        await keepAfterWatch(app, target, run.id, (line) => run.observer.note(line), true);
      };
      return { value: result, afterEnd };
    },
  );
}

/** The standby color's release: started if stopped (rebuilt if its build configuration changed), health, switch, watch. */
async function standbySteps(run: DeployRun, target: Color, liveSha: string, force: boolean | undefined): Promise<PreparedRecord> {
  const { app } = run;
  const live = otherColor(target);
  const prepared = await run.step('pick', `check that ${target} holds the previous release`, () => previousRelease(run, target, liveSha, force));
  await pickedFact(run, live, target, { sha: prepared.sha, resolvedRef: prepared.ref });
  // Built with another configuration than today's (env, build, build_env's values, Node.js):
  // built again, so that what goes live is what duet.yml says. Only the start is redone else.
  const settings = await appSettings(app, 'update');
  if (prepared.config !== settings.hashes.build) {
    await run.step('update', `rebuild ${target} at ${prepared.sha.slice(0, 7)}: its build configuration changed`, async () => {
      const outcome = await updateInstance(app, target, prepared, run.log, { settings });
      return { value: undefined, detail: outcome.kind === 'updated' ? `install ${outcome.install}` : 'already prepared' };
    });
  }
  await goLive(run, target, prepared);
  return prepared;
}

/**
 * A kept release into the idle color: its tree renamed into place, no install and no build
 * (a release built with another build configuration than today's is restored as it was built,
 * and said), then start, health, switch, watch. A restore that fails puts the tree back.
 */
async function restoreSteps(run: DeployRun, live: Color, liveSha: string, wanted: RollbackTarget, force: boolean | undefined): Promise<KeptRelease> {
  const { app } = run;
  const color = otherColor(live);
  const release = await run.step('pick', `pick the kept release (${describeTarget(wanted)})`, async () => {
    const value = await pickRelease(app, liveSha, wanted, { force, note: (line) => run.observer.note(line) });
    return { value, detail: `${value.ref} (${value.sha.slice(0, 7)}), deployed ${value.deployedAt}${force ? ' (--force)' : ''}` };
  });
  await pickedFact(run, live, color, { sha: release.sha, resolvedRef: release.ref });
  if (release.build !== (await appSettings(app, 'update')).hashes.build) {
    run.observer.note(`${release.sha.slice(0, 7)} was built with another build configuration than duet.yml's now: restored as it was built`);
  }
  try {
    await run.step('update', `restore ${release.sha.slice(0, 7)} into ${color} (no install, no build)`, async () => {
      if ((await preparedRelease(app, color))?.sha === release.sha) {
        return { value: undefined, skipped: true, detail: `${color} holds ${release.sha.slice(0, 7)} already` };
      }
      await runnerOf(app).stop(color);
      await restoreInto(app, color, release);
      return { value: undefined, detail: `the kept tree of ${release.ref} moved into ${color}` };
    });
    await goLive(run, color, release);
  } catch (error) {
    if ((await liveColor(run)) !== color) {
      await runnerOf(app)
        .stop(color)
        .catch(() => {});
      await putBack(app, color, release.sha).catch((e: Error) =>
        run.log.line(`could not put ${release.sha.slice(0, 7)} back among the kept releases: ${e.message}`),
      );
    }
    throw error;
  }
  return release;
}

/** The pick of a rollback: the other color's prepared release, unless it would change nothing or undo a breaking release. */
async function previousRelease(run: DeployRun, target: Color, liveSha: string, force: boolean | undefined): Promise<StepResult<PreparedRecord>> {
  const { app } = run;
  const live = otherColor(target);
  const record = await preparedRelease(app, target);
  if (!record) {
    throw new DuetError(`${target} holds no completely prepared release to roll back to`, {
      step: 'pick',
      hint: `restore a kept release (duet releases ${app.name} lists them): duet rollback ${app.name} --steps 1; or deploy a known-good ref: duet deploy --ref <tag>`,
    });
  }
  if (record.sha === liveSha) {
    throw new DuetError(`${target} holds the same commit as the live ${live} (${record.sha.slice(0, 7)}): rolling back would change nothing`, {
      step: 'pick',
      hint: `restore a kept release (duet releases ${app.name} lists them): duet rollback ${app.name} --steps 1; or deploy an earlier ref: duet deploy --ref <tag>`,
    });
  }
  const breaking = await readBreaking(app);
  if (breaking?.sha === liveSha && breaking.before === record.sha) {
    const why = `${record.ref} (${record.sha.slice(0, 7)}) is from before the breaking release ${liveSha.slice(0, 7)} (deploy ${breaking.deploy}), whose release changed what it relies on`;
    if (!force) {
      throw new DuetError(`${target} holds ${why}: a rollback to it is refused`, {
        step: 'pick',
        hint: 'deploy a fix forward (duet deploy --ref <ref>); or, if the old version copes with the database as it is now, duet rollback --force',
      });
    }
    run.observer.note(`--force: rolling back although ${why}`);
  }
  return { value: record, detail: `${target} holds ${record.ref} (${record.sha.slice(0, 7)})${force ? ' (--force)' : ''}` };
}
