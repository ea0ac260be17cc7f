import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { startGitHubServer, type GitHubServer } from '../../test/support/github-server.js';
import { repoRoot } from '../../test/support/git-repo.js';
import type { Scope } from '../lib/cleanup.js';
import { createDuetEnv, type DuetEnv } from '../lib/duet-env.js';
import { log } from '../lib/log.js';
import { readChildCalls, type Shims } from '../lib/shims.js';
import { median, round } from '../lib/stats.js';
import { nestSources } from './build-isolation.js';

/**
 * Section 7's artifact rows (issue 28): the `update` of one release of bench/nest-app (the
 * nestjs/typescript-starter dependencies, 30 generated NestJS modules) two ways, on two duet
 * setups with the same files: `source: git`, which installs every dependency and builds on the
 * server, and `source: release_asset`, which downloads the release's tarball from a local fake
 * GitHub API (test/support/github-server.ts), checks its digest, unpacks dist/ and installs the
 * production dependencies only. The tarball is the server build's own dist/, packed with tar: the
 * same release. Each round times `duet update-instance blue` of a release whose dependencies blue
 * does not have (its node_modules, install stamp and dist/ removed first: a lockfile change, or a
 * first deploy), then of the next release with the same lockfile (a code change: duet skips the
 * install). npm installs from the machine's cache (`--prefer-offline`).
 */

const REPO = 'inu-appcenter/cafeteria-server';
/**
 * duet's build priority (`chrt --idle 0 ionice -c 3 choom -n 1000 --`) is section 7's subject; here
 * pass-through stand-ins, first in duet's PATH, run both updates at normal priority, so that the
 * figure is the work each does and not how long other tenants of a shared machine keep an
 * idle-priority build waiting (an `npm ci` at idle priority got about 1% of a core here).
 */
const PASS_THROUGH: Record<string, number> = { chrt: 2, ionice: 2, choom: 3 };
const ASSET = 'app.tar.gz';
const TOKEN = { DUET_GITHUB_TOKEN: 'ghs_bench' };
/** A fresh install of 740 packages on a busy shared machine can take minutes. */
const UPDATE_TIMEOUT_MS = 900_000;

export type ArtifactSource = 'git: install + build on the server' | 'release_asset: prebuilt';
export type ArtifactCase = 'new dependencies' | 'same lockfile';

export interface ArtifactUpdate {
  round: number;
  source: ArtifactSource;
  case: ArtifactCase;
  /** `duet update-instance` wall time. */
  wallMs: number;
  /** The install and build commands (timing shims); null when they did not run. */
  installMs: number | null;
  buildMs: number | null;
}

export interface ArtifactResult {
  assetBytes: number;
  packages: { all: number; production: number };
  updates: ArtifactUpdate[];
}

export interface ArtifactSetup {
  git: DuetEnv;
  asset: DuetEnv;
  github: GitHubServer;
  /** The duet CLI's environment: the GitHub token, the pass-through priority tools first in PATH. */
  cliEnv: Record<string, string>;
}

async function passThroughTools(root: string, shims: Shims): Promise<string> {
  const dir = join(root, 'artifact-bin');
  await mkdir(dir, { recursive: true });
  for (const [tool, skip] of Object.entries(PASS_THROUGH)) await writeFile(join(dir, tool), `#!/bin/sh\nshift ${skip}\nexec "$@"\n`, { mode: 0o755 });
  return `${dir}${delimiter}${shims.env.PATH}`;
}

const tagsOf = (r: number): Record<ArtifactCase, string> => ({ 'new dependencies': `c${r}`, 'same lockfile': `w${r}` });

async function nestFiles(): Promise<Record<string, string>> {
  const dir = join(repoRoot(), 'bench', 'nest-app');
  return {
    'package.json': await readFile(join(dir, 'package.json'), 'utf8'),
    'package-lock.json': await readFile(join(dir, 'package-lock.json'), 'utf8'),
    ...nestSources(),
    VERSION: 'v0\n',
  };
}

export async function prepareArtifact(scope: Scope, root: string, shims: Shims, rounds: number): Promise<ArtifactSetup> {
  const github = await startGitHubServer(scope.context);
  const files = await nestFiles();
  const app = {
    install: JSON.stringify(`${shims.timed} install npm ci --prefer-offline --no-audit --no-fund`),
    build: JSON.stringify(`${shims.timed} build npm run build`),
    start: JSON.stringify('exec node dist/main.js'),
  };
  const [git, asset] = await Promise.all([
    createDuetEnv(scope, root, shims, { name: 'artifact-git', switchMode: 'port', files, app }),
    createDuetEnv(scope, root, shims, {
      name: 'artifact-asset',
      switchMode: 'port',
      files,
      app: { ...app, source: 'release_asset', artifact: `{ name: ${ASSET}, contains: [dist] }` },
      top: { github: `{ api_url: "${github.url}" }` },
    }),
  ]);
  for (const env of [git, asset]) for (let r = 1; r <= rounds; r += 1) for (const tag of Object.values(tagsOf(r))) await env.tag(tag);
  return { git, asset, github, cliEnv: { ...TOKEN, PATH: await passThroughTools(root, shims) } };
}

/** Blue as before its first install of this lockfile: no node_modules, no install stamp, no build output. */
async function forgetInstall(env: DuetEnv): Promise<void> {
  const { paths } = env.setup.app;
  const checkout = paths.checkout.blue;
  for (const path of [join(checkout, 'node_modules'), join(checkout, 'dist'), join(checkout, 'tsconfig.build.tsbuildinfo'), paths.installStamp.blue]) {
    await rm(path, { recursive: true, force: true });
  }
}

async function timedUpdate(
  env: DuetEnv,
  cliEnv: Record<string, string>,
  tag: string,
  round: number,
  source: ArtifactSource,
  kind: ArtifactCase,
): Promise<ArtifactUpdate> {
  const before = (await readChildCalls(env.shims)).length;
  const run = await env.cli(['update-instance', 'blue', '--ref', tag], cliEnv, UPDATE_TIMEOUT_MS);
  if (run.code !== 0)
    throw new Error(`duet update-instance blue --ref ${tag} (${env.name}) exited ${run.code}:\n${run.stderr.trim().split('\n').slice(-15).join('\n')}`);
  // Both setups share the shims' log: only calls inside this run's window are its own.
  const calls = (await readChildCalls(env.shims)).slice(before).filter((c) => c.start >= run.startedAt && c.end <= run.endedAt);
  const total = (label: string): number | null => {
    const mine = calls.filter((c) => c.label === label);
    return mine.length ? mine.reduce((sum, c) => sum + c.end - c.start, 0) : null;
  };
  const update: ArtifactUpdate = {
    round,
    source,
    case: kind,
    wallMs: round1(run.wallMs),
    installMs: round1(total('install')),
    buildMs: round1(total('build')),
  };
  log(`  ${source}, ${kind}: ${(update.wallMs / 1000).toFixed(1)} s (install ${fmtS(update.installMs)}, build ${fmtS(update.buildMs)})`);
  return update;
}

const round1 = <T extends number | null>(value: T): T => (value === null ? value : (round(value, 0) as T));
const fmtS = (value: number | null): string => (value === null ? 'none' : `${(value / 1000).toFixed(1)} s`);

/** Packages in a lockfile (the root package.json's own entry, "", left out). */
async function packageCount(lockfile: string): Promise<number> {
  const lock = JSON.parse(await readFile(lockfile, 'utf8')) as { packages: object };
  return Object.keys(lock.packages).filter((key) => key !== '').length;
}

export async function runArtifactUpdate(root: string, setup: ArtifactSetup, rounds: number): Promise<ArtifactResult> {
  const { git, asset, github } = setup;
  const updates: ArtifactUpdate[] = [];
  const packages = { all: 0, production: 0 };
  let assetBytes = 0;
  packages.all = await packageCount(join(repoRoot(), 'bench', 'nest-app', 'package-lock.json'));
  for (let r = 1; r <= rounds; r += 1) {
    const tags = tagsOf(r);
    await forgetInstall(git);
    updates.push(await timedUpdate(git, setup.cliEnv, tags['new dependencies'], r, 'git: install + build on the server', 'new dependencies'));
    // The release CI would publish: this build's dist/, packed (the same for both tags: only VERSION differs).
    const tarball = join(root, `artifact-${r}.tar.gz`);
    await execa('tar', ['-czf', tarball, '-C', git.setup.app.paths.checkout.blue, 'dist'], { stdin: 'ignore' });
    const bytes = await readFile(tarball);
    assetBytes = bytes.length;
    for (const tag of Object.values(tags)) github.serveRelease(REPO, tag, [{ name: ASSET, bytes, digest: true }]);
    updates.push(await timedUpdate(git, setup.cliEnv, tags['same lockfile'], r, 'git: install + build on the server', 'same lockfile'));
    await forgetInstall(asset);
    updates.push(await timedUpdate(asset, setup.cliEnv, tags['new dependencies'], r, 'release_asset: prebuilt', 'new dependencies'));
    // npm's hidden lockfile lists what this install put in node_modules.
    packages.production = await packageCount(join(asset.setup.app.paths.checkout.blue, 'node_modules', '.package-lock.json'));
    updates.push(await timedUpdate(asset, setup.cliEnv, tags['same lockfile'], r, 'release_asset: prebuilt', 'same lockfile'));
  }
  return { assetBytes, packages, updates };
}

/** Section 7's artifact table: per case, the median update of each source and their ratio. */
export function artifactDetails(
  result: ArtifactResult | undefined,
  failure: string | undefined,
  table: (header: string[], rows: string[][]) => string,
): string {
  if (!result) return `n/a${failure ? `: ${failure}` : ''}`;
  const s = (value: number | null | undefined): string => (value === null || value === undefined ? '—' : `${(value / 1000).toFixed(1)} s`);
  const rows: string[][] = [];
  for (const kind of ['new dependencies', 'same lockfile'] as const) {
    const wall: Partial<Record<ArtifactSource, number | null>> = {};
    for (const source of ['git: install + build on the server', 'release_asset: prebuilt'] as const) {
      const mine = result.updates.filter((u) => u.case === kind && u.source === source);
      wall[source] = median(mine.map((u) => u.wallMs));
      rows.push([
        kind,
        source,
        mine.map((u) => s(u.wallMs)).join(', '),
        s(median(mine.flatMap((u) => (u.installMs === null ? [] : [u.installMs])))),
        s(median(mine.flatMap((u) => (u.buildMs === null ? [] : [u.buildMs])))),
        s(median(mine.map((u) => u.wallMs - (u.installMs ?? 0) - (u.buildMs ?? 0)))),
      ]);
    }
    const built = wall['git: install + build on the server'];
    const prebuilt = wall['release_asset: prebuilt'];
    if (built && prebuilt) rows.push([kind, 'prebuilt / built on the server (medians)', `${((prebuilt / built) * 100).toFixed(0)}%`, '', '', '']);
  }
  return [
    `\`duet update-instance blue\` of one release of bench/nest-app: built on the server (\`source: git\`) and as a release asset (\`source: release_asset\`, ` +
      `a ${(result.assetBytes / 1024).toFixed(0)} KiB tarball of the server build's dist/ from a local fake GitHub API). ` +
      `Packages: ${result.packages.all} in the lockfile, ${result.packages.production} of them production dependencies. ` +
      'The rest: git, the download and unpacking, putting back the devDependencies a prune removed (a same-lockfile update built on the server), the prune, duet.',
    '',
    table(['case', 'source', 'update (each round)', 'install command (median)', 'build command (median)', 'the rest (median)'], rows),
  ].join('\n');
}
