import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './load.js';

/**
 * What `duet serve` can take from an edited duet.yml without a restart (SIGHUP, `systemctl
 * reload duet`): the apps, each whole (a deploy, supervision and the API read them per use), and
 * build_limits. The rest shapes what the process set up when it started (its listener, its
 * state dir, its GitHub client, the notify outbox, the user and runner of every unit), so a change
 * there is refused as a whole, not half applied.
 */
const RESTART_ONLY = ['stateDir', 'server', 'github', 'user', 'runner', 'appUser', 'nginx', 'notify'] as const satisfies ReadonlyArray<keyof Config>;

/** The duet.yml keys of RESTART_ONLY, for the operator. */
const KEY_OF: Record<(typeof RESTART_ONLY)[number], string> = {
  stateDir: 'state_dir',
  server: 'server',
  github: 'github',
  user: 'user',
  runner: 'runner',
  appUser: 'app_user',
  nginx: 'nginx',
  notify: 'notify',
};

type ReloadPlan = { restartFor: string[] } | { apps: { added: string[]; removed: string[]; changed: string[] } };

/** Whether `next` can replace `current` in a running duet serve, and what it changes. */
export function planReload(current: Config, next: Config): ReloadPlan {
  const restartFor = RESTART_ONLY.filter((key) => !isDeepStrictEqual(current[key], next[key])).map((key) => KEY_OF[key]);
  if (restartFor.length > 0) return { restartFor };
  const names = (config: Config) => [...config.apps.keys()];
  return {
    apps: {
      added: names(next).filter((name) => !current.apps.has(name)),
      removed: names(current).filter((name) => !next.apps.has(name)),
      changed: names(next).filter((name) => current.apps.has(name) && !isDeepStrictEqual(current.apps.get(name), next.apps.get(name))),
    },
  };
}

/**
 * Make the running process's config `next`. In place, on purpose: the queue, the HTTP side and
 * the GitHub reporter hold this one object and look an app up by name at each use, so the next
 * webhook, API call and deploy see the new apps. What holds an app's object for longer (each
 * app's supervision) is built anew by its owner; a deploy already running finishes with the
 * app as it began.
 */
export function adoptConfig(current: Config, next: Config): void {
  current.apps = next.apps;
  current.buildLimits = next.buildLimits;
  current.digest = next.digest;
}

/** What a running duet serve says of itself: which duet.yml it loaded, and which process it is. */
export interface ServedConfig {
  digest: string;
  pid: number;
  /** The process's start time (/proc): a reused pid is not it. */
  startTime: string;
}

/**
 * Where duet serve writes its ServedConfig, so that `duet install` reloads a duet serve whose
 * file changed since, and `duet doctor` tells one that runs an older file.
 */
export function servedConfigPath(config: Pick<Config, 'stateDir'>): string {
  return join(config.stateDir, 'serve-config.json');
}

/** What the last duet serve wrote; undefined when none ever ran (or the file is not its). */
export async function readServedConfig(config: Pick<Config, 'stateDir'>): Promise<ServedConfig | undefined> {
  try {
    const served = JSON.parse(await readFile(servedConfigPath(config), 'utf8')) as ServedConfig;
    return typeof served.digest === 'string' && Number.isInteger(served.pid) && typeof served.startTime === 'string' ? served : undefined;
  } catch {
    return undefined;
  }
}
