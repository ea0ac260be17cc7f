import { join } from 'node:path';
import { createAppRepo, type AppRepo } from '../test/support/git-repo.js';
import { freePort } from '../test/support/ports.js';
import { appFiles } from './lib/app.js';
import { createBaseline, type Baseline } from './lib/baseline.js';
import { ownDir, type Scope } from './lib/cleanup.js';
import { createDuetEnv, mustCli, type DuetEnv } from './lib/duet-env.js';
import { appendCommits, versionTags } from './lib/git-fast.js';
import type { Shims } from './lib/shims.js';
import type { Results } from './results.js';
import { crashingVersion, WATCH_S, type BaselineFailsSetup, type DuetFailsSetup } from './scenarios/app-fails.js';
import type { LoadSettings } from './scenarios/deploy-load.js';
import { prepareTls, type TlsSetup } from './scenarios/tls-reload.js';
import { prepareArtifact, type ArtifactSetup } from './scenarios/artifact-update.js';
import { KIND_GROUPS, loadSeries, series, settings } from './settings.js';
import { DUET_ACTIVATION, DUET_PORT, DUET_SOCKET } from './systems.js';

/**
 * What the parts of a run are measured on. Each setup is prepared only when a part that runs
 * needs it, all of them concurrently at the start, when nothing is being measured.
 */

/** What every part and setup of one run shares. */
export interface Bench {
  root: string;
  shims: Shims;
  results: Results;
  loadSettings: LoadSettings;
  /** The wrk script of the webhook intake. */
  webhookScript: string;
}

export interface DuetSetup {
  env: DuetEnv;
  /** duet serve's port. */
  servePort: number;
  breakdown: string[];
  /** Per kind group, the tags of its deploys. */
  load: string[][];
  /** Per kind group, the tags deployed by hand around bare reloads (port mode). */
  amid: string[][];
}

export interface BaselineSetup {
  repo: AppRepo;
  baseline: Baseline;
  tags: { naive: string[][]; pm2: string[][] };
}

export interface FailsSetups {
  socket: DuetFailsSetup;
  port: DuetFailsSetup;
  /** Socket mode with socket_activation: duet serve holds each color's socket across restarts. */
  activation: DuetFailsSetup;
  baseline: BaselineFailsSetup;
}

export interface Setups {
  socket: DuetSetup;
  port: DuetSetup;
  baseline: BaselineSetup;
  fails: FailsSetups;
  /** Section 7: a duet of its own, v0 live, the build's neighbour. */
  isolation: DuetEnv;
  /** Section 1's certificate rows: duet (port) with tls: files, v0 live. */
  tls: TlsSetup;
  /** Section 7's artifact rows: bench/nest-app on duet with source: git and with source: release_asset. */
  artifact: ArtifactSetup;
}
export type SetupName = keyof Setups;

export const SETUPS: { [N in SetupName]: { label: string; prepare: (scope: Scope, bench: Bench) => Promise<Setups[N]> } } = {
  socket: { label: 'duet (socket)', prepare: (scope, bench) => prepareDuet(scope, bench, 'socket') },
  port: { label: 'duet (port)', prepare: (scope, bench) => prepareDuet(scope, bench, 'port') },
  baseline: { label: 'the baseline app', prepare: (scope, bench) => prepareBaseline(scope, bench.root) },
  fails: {
    label: 'for "the app fails": duet (socket, port) with the watch on, the baseline app',
    prepare: (scope, bench) => prepareFails(scope, bench.root, bench.shims),
  },
  isolation: { label: 'for "a build next to the live app": duet (port)', prepare: (scope, bench) => prepareIsolation(scope, bench) },
  tls: {
    label: 'for reload-tls: duet (port) with tls: files',
    prepare: (scope, bench) => prepareTls(scope, bench.root, bench.shims, KIND_GROUPS.length * settings.deploysPerRow),
  },
  artifact: {
    label: 'for "an artifact deploy": duet (port) with source: git and source: release_asset, a fake GitHub API',
    prepare: (scope, bench) => prepareArtifact(scope, bench.root, bench.shims, settings.artifactRounds),
  },
};

async function prepareIsolation(scope: Scope, bench: Bench): Promise<DuetEnv> {
  const env = await createDuetEnv(scope, bench.root, bench.shims, { name: 'isolation', switchMode: 'port' });
  await mustCli(env, ['deploy', '--ref', env.initialTag]);
  return env;
}

/**
 * A duet setup in its steady state: both colors deployed once (v0, then w0), so that what is
 * measured are the deploys of a running service, not the first one into an empty directory.
 * w0 is live, v0 the warm standby.
 */
async function prepareDuet(scope: Scope, bench: Bench, mode: 'socket' | 'port'): Promise<DuetSetup> {
  const servePort = await freePort();
  const env = await createDuetEnv(scope, bench.root, bench.shims, { name: mode, switchMode: mode, top: { server: `{ listen: "127.0.0.1:${servePort}" }` } });
  const names = {
    breakdown: series('b', settings.breakdownReps),
    load: loadSeries(['k', 'c']),
    amid: mode === 'port' ? [series('r', settings.deploysPerRow)] : [],
  };
  await appendCommits(env.setup.repo, versionTags(['w0', ...names.breakdown, ...names.load.flat(), ...names.amid.flat()]));
  await mustCli(env, ['deploy', '--ref', env.initialTag]);
  await mustCli(env, ['deploy', '--ref', 'w0']);
  return { env, servePort, ...names };
}

async function prepareBaseline(scope: Scope, root: string): Promise<BaselineSetup> {
  const repo = await createAppRepo(scope.context, { files: appFiles('v0') });
  ownDir(join(repo.bareDir, '..'));
  await repo.tag('v0');
  const tags = { naive: loadSeries(['n', 'm']), pm2: loadSeries(['p', 'q']) };
  await appendCommits(repo, versionTags([...tags.naive.flat(), ...tags.pm2.flat()]));
  const baseline = await createBaseline(scope, root, repo, 'v0');
  return { repo, baseline, tags };
}

/**
 * Section 6's own setups: duet with the watch on (health.watch_s as installed; the timing rows
 * turn it off), each with a `duet serve` port, both colors warm (v0 the standby, f1 live, fx the
 * version that crashes, committed last since every later commit would inherit its
 * behaviour.json); and the baseline app (v0; nx crashes) behind its own nginx, with its app log.
 */
async function prepareFails(scope: Scope, root: string, shims: Shims): Promise<FailsSetups> {
  const duet = async (mode: 'socket' | 'port', system: string, activation = false): Promise<DuetFailsSetup> => {
    const servePort = await freePort();
    const env = await createDuetEnv(scope, root, shims, {
      name: `fails-${mode}${activation ? '-activation' : ''}`,
      switchMode: mode,
      app: { health: `{ path: /health, timeout_s: 30, watch_s: ${WATCH_S} }`, ...(activation ? { socket_activation: 'true' } : {}) },
      top: { server: `{ listen: "127.0.0.1:${servePort}" }` },
    });
    await appendCommits(env.setup.repo, [...versionTags(['f1']), crashingVersion('fx')]);
    await mustCli(env, ['deploy', '--ref', env.initialTag]);
    await mustCli(env, ['deploy', '--ref', 'f1']);
    return { env, mode, system, servePort, live: 'f1', crashTag: 'fx' };
  };
  const baseline = async (): Promise<BaselineFailsSetup> => {
    const repo = await createAppRepo(scope.context, { files: appFiles('v0') });
    ownDir(join(repo.bareDir, '..'));
    await repo.tag('v0');
    await appendCommits(repo, [crashingVersion('nx')]);
    const appLog = join(root, 'fails-baseline-app.ndjson');
    return { baseline: await createBaseline(scope, root, repo, 'v0', { name: 'fails-baseline', appLog }), appLog, good: 'v0', crashTag: 'nx' };
  };
  const [socket, port, activation, base] = await Promise.all([
    duet('socket', DUET_SOCKET),
    duet('port', DUET_PORT),
    duet('socket', DUET_ACTIVATION, true),
    baseline(),
  ]);
  return { socket, port, activation, baseline: base };
}
