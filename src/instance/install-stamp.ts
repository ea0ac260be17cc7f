import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Color } from '../config/schema.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';

/**
 * What app.paths.installStamp[color] holds: written only after an install succeeded, and
 * removed before anything changes the tree it describes (a new install, a prune), so that a
 * crash half-way is never taken for a finished tree.
 */
export interface InstallStamp {
  fingerprint: string;
  installedAt: string;
  /** Whether the install left a node_modules (a project without dependencies may have none). */
  nodeModules: boolean;
  /** The color it was copied from, when it was copied. */
  copiedFrom?: Color;
  /** The devDependencies were pruned after the build: a skip or a copy puts them back first. */
  pruned?: true;
}

export async function readInstallStamp(path: string): Promise<InstallStamp | undefined> {
  const text = await readFileIfExists(path);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<InstallStamp>;
    if (typeof value.fingerprint !== 'string') return undefined;
    return {
      fingerprint: value.fingerprint,
      installedAt: String(value.installedAt ?? ''),
      nodeModules: value.nodeModules !== false,
      ...(value.copiedFrom ? { copiedFrom: value.copiedFrom } : {}),
      ...(value.pruned === true ? { pruned: true as const } : {}),
    };
  } catch {
    return undefined; // a torn or hand-edited stamp only costs an install
  }
}

export async function writeInstallStamp(path: string, stamp: InstallStamp): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify(stamp, null, 2)}\n`);
}
