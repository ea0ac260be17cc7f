import type { DeployBreakdown } from '../lib/analyze.js';
import { depsAppManifests, DEPENDENCIES } from '../lib/app.js';
import type { DuetEnv } from '../lib/duet-env.js';
import { log } from '../lib/log.js';
import { median } from '../lib/stats.js';
import { measured } from './breakdown.js';
import { appendCommits, versionTags } from '../lib/git-fast.js';

/**
 * Section 3: deploying again with the same dependencies. Per round, three deploys of an app with
 * real npm dependencies:
 *   cold   a lockfile neither color has (dependencies added, or a new lockfile): `npm ci`
 *   other  a code change, same lockfile, into the other color: duet copies node_modules over
 *   same   a code change into the color that already has that lockfile: duet skips the install
 * The round's cost of each is its install phase (see analyze.ts), compared with the cold `npm ci`.
 * Then the same for a second app that also depends on a package with an install script
 * (WITH_INSTALL_SCRIPT): its skip and copy run `npm rebuild <it>` for each commit, and cost that.
 */

/** In duet's own lockfile (so in the npm cache), marked hasInstallScript: its postinstall checks its binary. */
export const WITH_INSTALL_SCRIPT = 'esbuild';

export interface InstallCase {
  case: 'cold' | 'other-color' | 'same-lockfile';
  tag: string;
  color: string | null;
  outcome: string | null;
  installPhaseMs: number | null;
  npmCiMs: number | null;
  copyMs: number | null;
  /** After the deploy's end: the copy made ahead for the next deploy into the other color. */
  copyAheadMs: number | null;
  /** installPhaseMs / the round's cold npm ci. */
  ratio: number | null;
  deploy: DeployBreakdown;
}

export interface InstallSummary {
  coldNpmCiMs: number | null;
  otherColorMs: number | null;
  sameLockfileMs: number | null;
  otherRatio: number | null;
  sameRatio: number | null;
}

export interface InstallResult {
  dependencies: readonly string[];
  packages: number;
  rounds: InstallCase[][];
  summary: InstallSummary;
  /** The second app: the same dependencies plus WITH_INSTALL_SCRIPT. */
  withInstallScript?: { dependency: string; packages: number; rounds: InstallCase[][]; summary: InstallSummary };
}

export async function runInstallReuse(env: DuetEnv, rounds: number): Promise<InstallResult> {
  const plain = await runRounds(env, rounds, [], 'i');
  const scripted = await runRounds(env, rounds, [WITH_INSTALL_SCRIPT], 's');
  return {
    dependencies: DEPENDENCIES,
    ...plain,
    withInstallScript: { dependency: WITH_INSTALL_SCRIPT, ...scripted },
  };
}

async function runRounds(
  env: DuetEnv,
  rounds: number,
  extra: readonly string[],
  prefix: string,
): Promise<{ packages: number; rounds: InstallCase[][]; summary: InstallSummary }> {
  const all: InstallCase[][] = [];
  let packages = 0;
  for (let round = 1; round <= rounds; round += 1) {
    // Variants of the second app start at 100: never a lockfile the first app's rounds made.
    const manifests = depsAppManifests(extra.length > 0 ? 100 + round : round, extra);
    packages = manifests.count;
    const coldTag = `${prefix}${round}-cold`;
    const otherTag = `${prefix}${round}-other`;
    const sameTag = `${prefix}${round}-same`;
    await appendCommits(env.setup.repo, [
      { tag: coldTag, files: { VERSION: `${coldTag}\n`, 'package.json': manifests['package.json'], 'package-lock.json': manifests['package-lock.json'] } },
      ...versionTags([otherTag, sameTag]),
    ]);

    const cases: InstallCase[] = [];
    for (const [kind, tag] of [
      ['cold', coldTag],
      ['other-color', otherTag],
      ['same-lockfile', sameTag],
    ] as const) {
      const deploy = await measured(env, ['deploy', '--ref', tag], 'deploy', tag);
      const records = await env.records();
      const color = records.find((r) => r.id === deploy.id)?.color ?? null;
      cases.push({
        case: kind,
        tag,
        color,
        outcome: deploy.installOutcome,
        installPhaseMs: deploy.installPhaseMs,
        npmCiMs: deploy.npmCiMs,
        copyMs: deploy.copyMs,
        copyAheadMs: deploy.copyAheadMs,
        ratio: null,
        deploy,
      });
    }
    const cold = cases[0]!.npmCiMs;
    for (const entry of cases) entry.ratio = cold && entry.installPhaseMs !== null ? entry.installPhaseMs / cold : null;
    for (const entry of cases) {
      log(
        `  ${extra.length > 0 ? `with ${extra.join(', ')}: ` : ''}round ${round} ${entry.case.padEnd(13)} -> ${entry.color} install ${entry.outcome}: phase ${entry.installPhaseMs?.toFixed(1)} ms` +
          (entry.npmCiMs !== null ? ` (npm ci ${entry.npmCiMs.toFixed(0)} ms)` : '') +
          (entry.copyMs !== null ? ` (cp ${entry.copyMs.toFixed(1)} ms)` : '') +
          (entry.copyAheadMs !== null ? ` (then cp ahead for the other color ${entry.copyAheadMs.toFixed(0)} ms)` : '') +
          (entry.ratio !== null ? ` = ${(entry.ratio * 100).toFixed(2)}% of cold` : ''),
      );
    }
    all.push(cases);
  }
  const pick = (kind: InstallCase['case'], key: 'installPhaseMs' | 'ratio' | 'npmCiMs') =>
    median(all.map((r) => r.find((c) => c.case === kind)?.[key] ?? null));
  return {
    packages,
    rounds: all,
    summary: {
      coldNpmCiMs: pick('cold', 'npmCiMs'),
      otherColorMs: pick('other-color', 'installPhaseMs'),
      sameLockfileMs: pick('same-lockfile', 'installPhaseMs'),
      otherRatio: pick('other-color', 'ratio'),
      sameRatio: pick('same-lockfile', 'ratio'),
    },
  };
}
