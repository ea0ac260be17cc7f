import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { commitTrailer } from '../instance/checkout.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';

/**
 * A breaking release changed what the version before it relies on (its release dropped or renamed
 * a column), so the two cannot overlap as duet's colors otherwise do (docs/deploy.md, "Breaking
 * deploys"). While it is live, nginx has no fallback to the other color; the deploy stops the
 * other color after the drain, bootup leaves it stopped, and a rollback to the commit that was
 * live before it is refused without --force. Which commit that is, only duet can tell: it is kept
 * in <app>/run/breaking.json, written before the switch.
 */
export interface BreakingRecord {
  /** The breaking commit. */
  sha: string;
  /** The commit live before it (null: nothing was), the one a rollback must not go back to. */
  before: string | null;
  deploy: string;
  at: string;
}

/** The commit trailer that marks a commit breaking: `Duet-Breaking: true`. */
export const BREAKING_TRAILER = 'Duet-Breaking';

const pathOf = (app: AppConfig): string => join(app.paths.root, 'run', 'breaking.json');

export async function readBreaking(app: AppConfig): Promise<BreakingRecord | undefined> {
  const text = await readFileIfExists(pathOf(app));
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<BreakingRecord>;
    return typeof value.sha === 'string' ? { sha: value.sha, before: value.before ?? null, deploy: String(value.deploy), at: String(value.at) } : undefined;
  } catch {
    return undefined;
  }
}

export async function recordBreaking(app: AppConfig, record: BreakingRecord): Promise<void> {
  await writeFileAtomic(pathOf(app), `${JSON.stringify(record)}\n`);
}

/** Whether the commit, checked out in `dir`, says it is breaking (a `Duet-Breaking: true` trailer). */
export async function marksItselfBreaking(dir: string, sha: string): Promise<boolean> {
  return (await commitTrailer(dir, sha, BREAKING_TRAILER)).some((value) => /^(true|yes|1)$/i.test(value));
}

/** The app as the switch renders it while `sha` runs: without the fallback when `sha` is a breaking release. */
export async function appForSwitch(app: AppConfig, sha: string | undefined): Promise<AppConfig> {
  return sha !== undefined && (await readBreaking(app))?.sha === sha ? { ...app, fallback: false } : app;
}
