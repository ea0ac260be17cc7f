import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import { runArgv, type OutputSink } from '../util/run.js';
import { stopRecordedGroup } from '../util/step-group.js';
import { readInstallStamp } from './install-stamp.js';

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
function earlyCopyPath(app: AppConfig, color: Color): string {
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
 * Remove the node_modules an early copy replaced. Its thousands of files take a while to remove,
 * so the update runs this alongside the build, not between the checkout and the build, and waits
 * for it before the color counts as prepared.
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

/**
 * Put a complete early copy in place as the color's node_modules. The old tree is renamed aside,
 * not removed first: the new tree is in place at once, and the old one is removed by
 * removeReplacedModules, which the update runs alongside the build.
 */
export async function takeEarlyCopy(app: AppConfig, color: Color, copy: EarlyCopy, nodeModules: string): Promise<void> {
  const old = replacedModulesPath(app, color);
  await rm(old, { recursive: true, force: true });
  if (existsSync(nodeModules)) await rename(nodeModules, old);
  await rm(markerOf(copy.path), { force: true });
  await rename(copy.path, nodeModules);
}
