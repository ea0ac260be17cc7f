import { lstatSync, readlinkSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { basename, dirname, join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { otherColor, parseColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { fsyncDirectory } from '../util/atomic-file.js';
import { crashPoint } from '../util/crash-point.js';

/**
 * Socket mode's switch is the symlink `live.sock -> <color>.sock` that nginx proxies to. Its
 * target is the truth of which color is enabled; undefined when it was never created.
 */
export async function liveSocketColor(app: AppConfig): Promise<Color | undefined> {
  let target: string;
  try {
    target = await readlink(app.paths.liveSocket);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EINVAL') throw unexpected(app, 'is not a symlink');
    throw error;
  }
  const color = parseColor(/^(\w+)\.sock$/.exec(basename(target))?.[1]);
  if (!color) throw unexpected(app, `points to ${target}`);
  return color;
}

function unexpected(app: AppConfig, what: string): DuetError {
  return new DuetError(`${app.paths.liveSocket} ${what}, not to blue.sock or green.sock`, {
    step: 'status',
    hint: 'it was changed by hand; connect a color again to recreate it',
  });
}

/** Long enough for nginx to finish the retry of a request that found live.sock's old target dead. */
const STANDBY_RENAME_DELAY_MS = 20;

/** What the two symlinks pointed to before a switch (undefined: nothing), for restoreSockets. */
interface SocketLinks {
  live: string | undefined;
  standby: string | undefined;
}

/**
 * Point live.sock at `<color>.sock` in one step: make the new symlink under a temp name, then
 * rename() it over the old one. rename is atomic, so every connect() nginx makes finds either the
 * old target or the new one, never nothing; connections already open stay with the old instance
 * and finish there. Then standby.sock, nginx's fallback, at the other color (removed with
 * `fallback: false`): between the two renames both name the new color, which is only ever asked
 * when live.sock fails. Targets are relative so the directory can move (a restored backup).
 * The calls are synchronous: they are the switch itself, the moment traffic moves, and each
 * async call would add a thread-pool round trip between "healthy" and live.
 */
export function pointSockets(app: AppConfig, color: Color): { before: SocketLinks; settled: Promise<void> } {
  const before = { live: linkTarget(app.paths.liveSocket), standby: linkTarget(app.paths.standbySocket) };
  replaceLink(app.paths.liveSocket, `${color}.sock`);
  crashPoint('switch:live-renamed');
  return { before, settled: pointStandby(app, color, before) };
}

/**
 * standby.sock after live.sock, and both renames made durable: what the caller awaits before
 * the switch counts as done. It does its own work meanwhile (nginx's conf), not after the wait.
 */
async function pointStandby(app: AppConfig, color: Color, before: SocketLinks): Promise<void> {
  const standby = `${otherColor(color)}.sock`;
  if (app.fallback && before.standby !== standby) {
    // Between the renames both links name the new color. A request whose try of live.sock
    // failed just before the first rename (the old color has died: a switch back) is retried on
    // standby.sock microseconds later; renamed at once, that would be the dead color too, and a
    // 502 (rare, but seen). Traffic has already moved, so the wait delays nothing.
    await sleep(STANDBY_RENAME_DELAY_MS);
    replaceLink(app.paths.standbySocket, standby);
  } else if (!app.fallback) {
    removeLink(app.paths.standbySocket);
  }
  // The renames must survive a power cut, or a reboot could bring back the old color.
  await fsyncDirectory(dirname(app.paths.liveSocket));
}

/** Undo pointSockets: each symlink points where it did before, or is gone if it was. */
export async function restoreSockets(app: AppConfig, before: SocketLinks): Promise<void> {
  for (const [path, target] of [
    [app.paths.liveSocket, before.live],
    [app.paths.standbySocket, before.standby],
  ] as const) {
    if (target !== undefined) replaceLink(path, target);
    else removeLink(path);
  }
  await fsyncDirectory(dirname(app.paths.liveSocket));
}

function removeLink(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function replaceLink(path: string, target: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  symlinkSync(target, temp);
  try {
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // the rename's error is the one worth reporting
    }
    throw error;
  }
}

function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

export function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}
