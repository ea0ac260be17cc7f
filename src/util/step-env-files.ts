import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'dotenv';

/**
 * The runner's side of an app's env files (app_user): systemd loads each file, root's and 0600,
 * into the runner unit's credentials directory (LoadCredential=env-<i>:<path>, written by duet
 * install in env_files' order), readable by the app user only while the unit runs. Parsed with
 * the dotenv package, as duet parses them where it reads them itself; a later file wins.
 */

/** The credential name of the env file at `index` of env_files. */
export const envFileCredential = (index: number): string => `env-${index}`;

export async function credentialEnvFiles(dir = process.env.CREDENTIALS_DIRECTORY): Promise<Record<string, string>> {
  if (!dir) return {};
  const files = (await readdir(dir)).filter((name) => /^env-\d+$/.test(name)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const values: Record<string, string> = {};
  for (const file of files) Object.assign(values, parse(await readFile(join(dir, file))));
  return values;
}
