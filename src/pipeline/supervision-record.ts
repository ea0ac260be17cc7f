import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';

/**
 * What `duet serve`'s supervision knows that the machine does not keep: how often it restarted a
 * color, since when a color is down, and the last failover. Written (temp, fsync, rename) when
 * one of these changes, never per probe; `duet status` and the dashboard read it.
 */

/** A color's health as supervision last saw it. */
export type ColorHealth = 'healthy' | 'starting' | 'unhealthy' | 'down' | 'stopped';

export interface ColorSupervision {
  health: ColorHealth;
  /** Restarts duet serve made (runner: process) or saw systemd make; kept across its own restarts. */
  restarts: number;
  /** When it stopped answering: exited, or its health checks began failing. null while healthy. */
  downSince: string | null;
  /** "exited with code 1", "was killed by SIGKILL", "GET /health answered HTTP 500 3 times in a row". */
  lastProblem: string | null;
  lastProblemAt: string | null;
}

export interface FailoverRecord {
  /** The journal id of the failover run. */
  id: string;
  at: string;
  from: Color;
  to: Color;
  reason: string;
}

/** Both colors exited within a minute of each other: when it began, and each color's last problem. */
export interface BothCrashedRecord {
  at: string;
  detail: string;
}

export interface SupervisionRecord {
  /** The duet serve that wrote it (pid + start time: a reused pid is not it). */
  pid: number;
  startTime: string;
  updatedAt: string;
  colors: Record<Color, ColorSupervision>;
  lastFailover: FailoverRecord | null;
  bothCrashed: BothCrashedRecord | null;
}

export function emptyColorSupervision(): ColorSupervision {
  return { health: 'stopped', restarts: 0, downSince: null, lastProblem: null, lastProblemAt: null };
}

export async function readSupervision(app: AppConfig): Promise<SupervisionRecord | undefined> {
  const text = await readFileIfExists(app.paths.supervision);
  if (text === undefined) return undefined;
  try {
    const record = JSON.parse(text) as SupervisionRecord;
    return record && typeof record === 'object' && record.colors ? record : undefined;
  } catch {
    return undefined; // hand-edited; the next write replaces it
  }
}

export async function writeSupervision(app: AppConfig, record: SupervisionRecord): Promise<void> {
  await mkdir(dirname(app.paths.supervision), { recursive: true });
  await writeFileAtomic(app.paths.supervision, `${JSON.stringify(record)}\n`);
}
