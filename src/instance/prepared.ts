import { mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';

/**
 * The mark that a color's checkout was completely prepared (checked out, installed, built) for a
 * commit. It is removed before an update begins and written only after the build succeeds, so a
 * crash in between reads as "not prepared" and the update simply runs again.
 */
export interface PreparedRecord {
  sha: string;
  ref: string;
  /** The build configuration it was installed and built with (ConfigHashes.build). */
  config: string;
  preparedAt: string;
}

export async function readPrepared(app: AppConfig, color: Color): Promise<PreparedRecord | undefined> {
  const text = await readFileIfExists(app.paths.colorState[color]);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as PreparedRecord;
  } catch {
    return undefined;
  }
}

export async function markPrepared(app: AppConfig, color: Color, record: Omit<PreparedRecord, 'preparedAt'>): Promise<void> {
  const path = app.paths.colorState[color];
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify({ ...record, preparedAt: new Date().toISOString() })}\n`);
}

export async function clearPrepared(app: AppConfig, color: Color): Promise<void> {
  await unlink(app.paths.colorState[color]).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
