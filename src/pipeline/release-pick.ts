import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError, InvalidInputError } from '../errors.js';
import { refNameProblem, shownRef } from '../instance/git-ref.js';
import { nodeRuntime } from '../instance/node-runtime.js';
import { readPrepared } from '../instance/prepared.js';
import { runnerOf } from '../instance/runner.js';
import { switchOf } from '../switch/switch.js';
import { readBreaking } from './breaking.js';
import { listReleases, movedInto, requireFreeSpace, type KeptRelease } from './releases.js';

/** Which kept release a rollback restores: named (a commit or a ref), or the Nth good one before the live one. */
export type RollbackTarget = { to: string } | { steps: number };

const MAX_STEPS = 50;

/** A target as the CLI or the API gives it, validated: exactly one of `to` and `steps`, or none (the standby color). */
export function rollbackTargetOf(to: unknown, steps: unknown, names: { to: string; steps: string }): RollbackTarget | undefined {
  if (to !== undefined && to !== null && steps !== undefined && steps !== null) {
    throw new InvalidInputError(`${names.to} and ${names.steps} name the same thing: give one of them`, { step: 'pick' });
  }
  if (to !== undefined && to !== null) {
    const problem = refNameProblem(to);
    if (problem !== undefined)
      throw new InvalidInputError(`invalid ${names.to}: ${problem}`, { step: 'pick', hint: 'a commit id or a ref, as `duet releases` shows it' });
    return { to: to as string };
  }
  if (steps === undefined || steps === null) return undefined;
  const n = typeof steps === 'string' && /^\d+$/.test(steps) ? Number(steps) : steps;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_STEPS) {
    throw new InvalidInputError(`invalid ${names.steps} ${JSON.stringify(steps)}: a whole number from 1 to ${MAX_STEPS}`, { step: 'pick' });
  }
  return { steps: n };
}

export function describeTarget(target: RollbackTarget): string {
  return 'to' in target ? `--to ${target.to}` : `--steps ${target.steps}`;
}

/** A ref as people name it: `v1.2`, `main`. */
export const shortRef = (ref: string): string => ref.replace(/^refs\/(heads|tags)\//, '');

const isCommitPrefix = (value: string): boolean => /^[0-9a-f]{7,64}$/i.test(value);
const refMatches = (ref: string, name: string): boolean => ref === name || ref === `refs/tags/${name}` || ref === `refs/heads/${name}`;

/** The release `target` names among the kept ones, before any check; a DuetError when there is none. */
function findTarget(app: AppConfig, releases: KeptRelease[], liveSha: string, target: RollbackTarget): KeptRelease {
  const hint = `\`duet releases ${app.name}\` lists the kept releases; an older one is a rebuild: duet deploy --ref <ref>`;
  if ('to' in target) {
    const wanted = target.to.toLowerCase();
    const found = (isCommitPrefix(wanted) ? releases.find((r) => r.sha.startsWith(wanted)) : undefined) ?? releases.find((r) => refMatches(r.ref, target.to));
    if (!found) throw new DuetError(`no kept release of ${app.name} is ${shownRef(target.to)}`, { step: 'pick', hint });
    return found;
  }
  // Back from the live release: older ones only, and none a rollback left (that walks back instead of toggling).
  const live = releases.find((r) => r.sha === liveSha);
  const before = releases.filter((r) => r.sha !== liveSha && r.bad === null && (!live || r.deployedAt < live.deployedAt));
  const found = before[target.steps - 1];
  if (!found) {
    throw new DuetError(
      `${app.name} has ${before.length} good kept release${before.length === 1 ? '' : 's'} before ${liveSha.slice(0, 7)}: --steps ${target.steps} goes past them`,
      {
        step: 'pick',
        hint,
      },
    );
  }
  return found;
}

/**
 * The kept release a rollback restores into `color`, checked: not the live commit, its tree in
 * the store, built for the installed Node.js's ABI, not from before a breaking release (unless
 * `force`), and room on the disk to keep it again after the restore.
 */
export async function pickRelease(
  app: AppConfig,
  liveSha: string,
  target: RollbackTarget,
  options: { force?: boolean; note?: (line: string) => void } = {},
): Promise<KeptRelease> {
  const release = findTarget(app, await listReleases(app), liveSha, target);
  const name = `${shortRef(release.ref)} (${release.sha.slice(0, 7)})`;
  if (release.sha === liveSha) {
    throw new DuetError(`${name} is the live release: rolling back to it would change nothing`, { step: 'pick', hint: `\`duet releases ${app.name}\`` });
  }
  if (!release.kept && !(await movedInto(app, release.sha))) {
    throw new DuetError(`${name} is kept only as a record: its tree is in a color since a rollback that did not finish`, {
      step: 'pick',
      hint: `roll back to the other color (duet rollback ${app.name}), or deploy it again: duet deploy --ref ${release.sha}`,
    });
  }
  const installed = await nodeRuntime(app.env.PATH ?? process.env.PATH);
  if (installed.modules !== release.node.modules) {
    throw new DuetError(
      `${name} was built by Node.js ${release.node.version} (ABI ${release.node.modules}), the installed Node.js is ${installed.version} (ABI ${installed.modules}): its native addons would not load`,
      { step: 'pick', hint: `deploy it again, which installs and builds it for this Node.js: duet deploy ${app.name} --ref ${release.sha}` },
    );
  }
  const breaking = await readBreaking(app);
  if (breaking && breaking.sha !== release.sha && release.deployedAt < breaking.at) {
    const why = `${name} is from before the breaking release ${breaking.sha.slice(0, 7)} (deploy ${breaking.deploy}), whose release changed what it relies on`;
    if (!options.force) {
      throw new DuetError(`${why}: a rollback to it is refused`, {
        step: 'pick',
        hint: `deploy a fix forward (duet deploy --ref <ref>); or, if the old version copes with the database as it is now, add --force`,
      });
    }
    options.note?.(`--force: rolling back although ${why}`);
  }
  await requireFreeSpace(app, release.bytes, 'pick', `restore ${name} and keep it again`);
  return release;
}

/** A kept release as `duet releases` and GET /apps/:app/releases show it: which colors hold it, and whether it is live. */
export type ReleaseView = Omit<KeptRelease, 'installStamp'> & { colors: Color[]; live: boolean };

export async function releasesView(config: Config, app: AppConfig): Promise<ReleaseView[]> {
  const [releases, live] = await Promise.all([listReleases(app), switchOf(app).configuredColor(config)]);
  const holds: Record<Color, string | undefined> = { blue: undefined, green: undefined };
  for (const color of ['blue', 'green'] as const) {
    holds[color] = (await runnerOf(app).running(color))?.sha ?? (await readPrepared(app, color))?.sha;
  }
  return releases.map(({ installStamp: _stamp, ...release }) => {
    const colors = (['blue', 'green'] as const).filter((c) => holds[c] === release.sha);
    return { ...release, colors, live: live !== undefined && colors.includes(live) };
  });
}
