import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError, type StepName } from '../errors.js';
import { checkedOutRevision } from '../instance/checkout.js';
import { findLockfile } from '../instance/install-key.js';
import { readInstallStamp, writeInstallStamp, type InstallStamp } from '../instance/install-stamp.js';
import { nodeRuntime } from '../instance/node-runtime.js';
import { clearPrepared, markPrepared, readPrepared } from '../instance/prepared.js';
import { runnerOf } from '../instance/runner.js';
import { fsyncDirectory, readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import { crashPoint } from '../util/crash-point.js';
import { runArgv } from '../util/run.js';

/**
 * Releases kept for a rollback further back than the standby color: after a deploy passed its
 * watch, its color's whole tree (checkout, node_modules, build output) is copied to
 * `<app>/releases/<sha>/tree`, beside `release.json`. A restore renames the tree into the idle
 * color (no install, no build, no copy while anyone waits) and, once the rollback passed its
 * watch, copies it back, so it stays kept. Everything here runs under the app's lock.
 */
interface ReleaseRecord {
  sha: string;
  ref: string;
  /** When its deploy passed the watch (a rollback to it keeps the date): the order --steps walks back in. */
  deployedAt: string;
  deploy: string;
  /** sha256 of the lockfile's bytes; null: there is none. */
  lockfile: string | null;
  /** The env files' hash (ConfigHashes.envFiles) the color was started with. */
  envFiles: string | null;
  /** The build configuration's hash the color's prepared record holds (ConfigHashes.build). */
  build: string;
  /** The Node.js that built it; `modules` (process.versions.modules) is the ABI its native addons need. */
  node: { version: string; modules: string };
  /** Whether its deploy ran a release step (duet.yml's `release`). */
  released: boolean;
  /** The tree's size on disk, bytes: what keeping it again after a restore needs free. */
  bytes: number;
  installStamp: InstallStamp | null;
  /** A rollback left it: `--steps` passes over it. Cleared when it passes a watch again. */
  bad: { at: string; deploy: string } | null;
}

/** A record, and whether its tree is in the store (false: a restore moved it into a color). */
export type KeptRelease = ReleaseRecord & { kept: boolean };

/** Room left besides a tree: the journal, the logs and the next deploy's build must still fit. */
const HEADROOM_BYTES = 64 * 1024 * 1024;

const releaseDir = (app: AppConfig, sha: string): string => join(app.paths.releases, sha);
const treeOf = (app: AppConfig, sha: string): string => join(releaseDir(app, sha), 'tree');
const recordPath = (app: AppConfig, sha: string): string => join(releaseDir(app, sha), 'release.json');

async function readRelease(app: AppConfig, sha: string): Promise<KeptRelease | undefined> {
  const text = await readFileIfExists(recordPath(app, sha));
  if (text === undefined) return undefined;
  try {
    const record = JSON.parse(text) as ReleaseRecord;
    return typeof record.sha === 'string' && typeof record.deployedAt === 'string' ? { ...record, kept: existsSync(treeOf(app, sha)) } : undefined;
  } catch {
    return undefined; // a hand-edited record only loses that release
  }
}

/** The kept releases, newest deploy first. Temp and leftover directories (a leading dot) are not releases. */
export async function listReleases(app: AppConfig): Promise<KeptRelease[]> {
  const names = await readdir(app.paths.releases).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const records = await Promise.all(names.filter((name) => !name.startsWith('.')).map((name) => readRelease(app, name)));
  return records.filter((r): r is KeptRelease => r !== undefined).sort((a, b) => b.deployedAt.localeCompare(a.deployedAt));
}

async function writeRecord(path: string, record: ReleaseRecord): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`);
}

/**
 * Keep the release `color` holds (after its deploy, or a rollback to it, passed the watch), then
 * prune. A tree already kept for the same build is not copied again. `restored`: a rollback's,
 * which keeps the record's date and deploy. Returns what it did, for a note.
 */
async function keepRelease(app: AppConfig, color: Color, deploy: string, options: { restored?: boolean } = {}): Promise<string> {
  const prepared = await readPrepared(app, color);
  if (app.keep_releases === 0 || !prepared) return `${await pruneReleases(app)}`;
  const old = await readRelease(app, prepared.sha);
  const when = options.restored && old ? { deployedAt: old.deployedAt, deploy: old.deploy } : { deployedAt: new Date().toISOString(), deploy };
  let did: string;
  if (old?.kept && old.build === prepared.config) {
    await writeRecord(recordPath(app, prepared.sha), { ...stripKept(old), ...when, bad: null });
    did = `${prepared.sha.slice(0, 7)} was kept already`;
  } else {
    const started = Date.now();
    const record = await copyTree(app, color, {
      sha: prepared.sha,
      ref: prepared.ref,
      build: prepared.config,
      ...when,
      released: old?.released ?? app.release !== undefined,
    });
    did = `kept ${prepared.sha.slice(0, 7)} (${Math.round(record.bytes / 1024 / 1024)} MiB) in ${Date.now() - started} ms`;
  }
  const pruned = await pruneReleases(app);
  return pruned ? `${did}; ${pruned}` : did;
}

const stripKept = ({ kept: _kept, ...record }: KeptRelease): ReleaseRecord => record;

type Identity = Pick<ReleaseRecord, 'sha' | 'ref' | 'build' | 'deployedAt' | 'deploy' | 'released'>;

/**
 * A real copy, reflinked where the file system can (btrfs, XFS): the kept tree must never share
 * an inode with a color, whose next build may rewrite a file in place. Made in a temp directory
 * and renamed into place whole: a crash leaves the old release or the new one.
 */
async function copyTree(app: AppConfig, color: Color, identity: Identity): Promise<ReleaseRecord> {
  const source = app.paths.checkout[color];
  const bytes = Number((await runArgv(['du', '-sk', '--', source], { step: 'record' })).split(/\s/)[0]) * 1024;
  await requireFreeSpace(app, bytes, 'record', `keep ${identity.sha.slice(0, 7)} for a rollback`);
  const lockfile = findLockfile(source);
  const [runtime, stamp, running] = await Promise.all([
    // The node on the app's PATH now, a moment after it built the tree: the one the install cache keys on too.
    nodeRuntime(app.env.PATH ?? process.env.PATH),
    readInstallStamp(app.paths.installStamp[color]),
    runnerOf(app).running(color),
  ]);
  const record: ReleaseRecord = {
    ...identity,
    lockfile: lockfile
      ? createHash('sha256')
          .update(await readFile(lockfile))
          .digest('hex')
      : null,
    envFiles: running?.envFiles ?? null,
    node: { version: runtime.version, modules: runtime.modules },
    bytes,
    installStamp: stamp ?? null,
    bad: null,
  };
  const temp = join(app.paths.releases, `.${identity.sha}.${process.pid}.tmp`);
  await rm(temp, { recursive: true, force: true });
  // Closed to other users, as all of the app root but its sockets (switch/socket-permissions.ts).
  await mkdir(temp, { recursive: true, mode: 0o700 });
  try {
    await runArgv(['cp', '-a', '--reflink=auto', '--', source, join(temp, 'tree')], { step: 'record' });
    await writeRecord(join(temp, 'release.json'), record);
    if (existsSync(releaseDir(app, identity.sha))) await rename(releaseDir(app, identity.sha), `${temp}.old`);
    await rename(temp, releaseDir(app, identity.sha));
    await fsyncDirectory(app.paths.releases);
  } finally {
    await rm(temp, { recursive: true, force: true });
    await rm(`${temp}.old`, { recursive: true, force: true });
  }
  return record;
}

/** Fails with a DuetError when the file system of the releases has less than `bytes` (and some headroom) free. */
export async function requireFreeSpace(app: AppConfig, bytes: number, step: StepName, what: string): Promise<void> {
  await mkdir(app.paths.releases, { recursive: true, mode: 0o700 });
  const fs = await statfs(app.paths.releases);
  const free = fs.bavail * fs.bsize;
  if (free >= bytes + HEADROOM_BYTES) return;
  const mib = (n: number): string => `${Math.ceil(n / 1024 / 1024)} MiB`;
  throw new DuetError(
    `not enough free disk space to ${what}: it needs ${mib(bytes + HEADROOM_BYTES)}, ${mib(free)} are free under <state_dir>/${app.name}/releases`,
    {
      step,
      hint: `free some space, or keep fewer releases (apps.${app.name}.keep_releases); \`duet releases ${app.name}\` lists them with their sizes`,
    },
  );
}

/** The commits the colors hold: running, prepared or checked out. A release one of them holds is never pruned. */
async function heldCommits(app: AppConfig): Promise<Set<string>> {
  const held = new Set<string>();
  for (const color of ['blue', 'green'] as const) {
    const [running, prepared, checkedOut] = await Promise.all([
      runnerOf(app).running(color),
      readPrepared(app, color),
      checkedOutRevision(app.paths.checkout[color]),
    ]);
    for (const sha of [running?.sha, prepared?.sha, checkedOut]) if (sha) held.add(sha);
  }
  return held;
}

/** Keep the newest keep_releases and whatever a color holds; remove the rest and any leftover of a crash. Says what it removed. */
async function pruneReleases(app: AppConfig): Promise<string> {
  const held = await heldCommits(app);
  const removed: string[] = [];
  for (const [index, release] of (await listReleases(app)).entries()) {
    if (index < app.keep_releases || held.has(release.sha)) continue;
    // The record first: a crash in between leaves a tree no listing shows, removed below next time.
    await unlink(recordPath(app, release.sha));
    await rm(releaseDir(app, release.sha), { recursive: true, force: true });
    removed.push(release.sha.slice(0, 7));
  }
  for (const name of await readdir(app.paths.releases).catch(() => [] as string[])) {
    const orphan = !name.startsWith('.') && !existsSync(recordPath(app, name));
    if (name.startsWith('.') || orphan) await rm(join(app.paths.releases, name), { recursive: true, force: true });
  }
  return removed.length > 0 ? `pruned ${removed.join(', ')} (keep_releases: ${app.keep_releases})` : '';
}

export async function markBad(app: AppConfig, sha: string, deploy: string): Promise<boolean> {
  const release = await readRelease(app, sha);
  if (!release) return false;
  await writeRecord(recordPath(app, sha), { ...stripKept(release), bad: { at: new Date().toISOString(), deploy } });
  return true;
}

/**
 * Move a kept tree into `color`'s checkout (the color is stopped): two renames on one file
 * system. The checkout it replaces is moved aside, into a leftover the next prune removes.
 */
export async function restoreInto(app: AppConfig, color: Color, release: ReleaseRecord): Promise<void> {
  const checkout = app.paths.checkout[color];
  await clearPrepared(app, color);
  // A restore killed after the tree moved in is finished from here: the tree is whole (a rename).
  if ((await movedInto(app, release.sha)) !== color) {
    if (existsSync(checkout)) await rename(checkout, join(app.paths.releases, `.replaced-${color}.${process.pid}.${Date.now()}`));
    await rename(treeOf(app, release.sha), checkout);
    crashPoint('restore:moved');
  }
  if (release.installStamp) await writeInstallStamp(app.paths.installStamp[color], release.installStamp);
  else await rm(app.paths.installStamp[color], { force: true });
  await markPrepared(app, color, { sha: release.sha, ref: release.ref, config: release.build });
  await fsyncDirectory(app.paths.root);
}

/** The color whose checkout a restore moved the release's tree into (it is no longer in the store). */
export async function movedInto(app: AppConfig, sha: string): Promise<Color | undefined> {
  if (existsSync(treeOf(app, sha))) return undefined;
  for (const color of ['blue', 'green'] as const) if ((await checkedOutRevision(app.paths.checkout[color])) === sha) return color;
  return undefined;
}

/** After a failed restore: a stopped color's tree goes back into the store (a rename), so the release stays kept. */
export async function putBack(app: AppConfig, color: Color, sha: string): Promise<void> {
  if (existsSync(treeOf(app, sha)) || !existsSync(releaseDir(app, sha)) || (await runnerOf(app).running(color))) return;
  if ((await readPrepared(app, color))?.sha !== sha) return;
  await clearPrepared(app, color);
  await rename(app.paths.checkout[color], treeOf(app, sha));
}

/**
 * After an operation's end, under its lock: keep what `color` went live with. A release that
 * cannot be kept (a full disk) is said, never the operation's failure: it is live already.
 */
export async function keepAfterWatch(app: AppConfig, color: Color, deploy: string, note: (line: string) => void, restored = false): Promise<void> {
  try {
    const did = await keepRelease(app, color, deploy, { restored });
    if (did) note(did);
  } catch (error) {
    note(`could not keep the release ${color} runs for a rollback: ${(error as Error).message.split('\n')[0]}`);
  }
}
