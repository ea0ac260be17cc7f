import { lstat, readFile } from 'node:fs/promises';
import { parse } from 'dotenv';
import type { AppConfig } from '../config/load.js';
import { envFileDigest, envFilesHash, envFilesReader } from '../instance/app-env.js';
import { readPidfile } from '../instance/pidfile.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { switchOf } from '../switch/switch.js';
import { fail, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { underRoot } from './layout.js';
import { isRoot, lookupUser, userName } from './system.js';

/**
 * The app's env_files: each exists, is a regular file (not a symlink), belongs to whoever must
 * read it (duet's user, or root with app_user, where systemd reads it) and is closed to group
 * and others; and, where doctor can read them (as root, or as their owner), they set every
 * name in `secrets`. No value is printed.
 */
export async function checkEnvFiles(ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `env files ${app.name}`;
  const owner = envFilesReader(app) === 'systemd' ? 'root' : ctx.setup.user;
  const ownerUid = owner === 'root' ? 0 : (await lookupUser(owner, ctx.root))?.uid;
  const names = new Set<string>();
  let unread = 0;
  for (const path of app.env_files) {
    const problem = await secretFileProblem(ctx, name, path, owner, ownerUid, 'NAME=value lines');
    if (problem) return problem;
    const text = await readFile(underRoot(ctx.root, path)).catch(() => undefined);
    if (text === undefined) unread += 1;
    else for (const key of Object.keys(parse(text))) names.add(key);
  }
  const missing = unread > 0 ? [] : app.secrets.filter((key) => !names.has(key) && !app.env[key]);
  if (missing.length > 0) {
    return fail(
      name,
      `${missing.join(', ')} (secrets) not set by ${app.env_files.join(', ')}`,
      `add ${missing.map((key) => `${key}=...`).join(', ')} to one of them`,
    );
  }
  const live = await switchOf(app)
    .configuredColor(ctx.setup.config)
    .catch(() => undefined);
  const running = live && (await readPidfile(app.paths.pidfile[live]));
  if (running && running.envFiles !== undefined && (await isSameProcessAlive(running))) {
    const now = envFilesHash(app, await Promise.all(app.env_files.map((path) => envFileDigest(app, underRoot(ctx.root, path)))));
    if (now !== running.envFiles) {
      return fail(name, `environment changed since start: restart pending (${live}, live, was started with other env files)`, `duet restart ${app.name}`);
    }
  }
  const count = `${app.env_files.length} file${app.env_files.length === 1 ? '' : 's'}, ${owner}'s, mode 0600 or closer`;
  const secrets =
    app.secrets.length === 0
      ? ''
      : unread > 0
        ? ` (not readable here${isRoot() ? '' : ': run sudo duet doctor'} to check secrets)`
        : `, set: ${app.secrets.join(', ')}`;
  return pass(name, `${count}${secrets}`);
}

/**
 * A file holding a secret (an env file, a notify URL): it exists, is a regular file (not a
 * symlink), belongs to `owner` and is closed to group and others; the failed check, or undefined.
 */
export async function secretFileProblem(
  ctx: DoctorContext,
  name: string,
  path: string,
  owner: string,
  ownerUid: number | undefined,
  holds: string,
): Promise<CheckResult | undefined> {
  const info = await lstat(underRoot(ctx.root, path)).catch(() => undefined);
  const create = `create it (${holds}), then: sudo chown ${owner}: ${path} && sudo chmod 600 ${path}`;
  if (!info) return fail(name, `${path} does not exist`, create);
  if (!info.isFile()) return fail(name, `${path} is not a regular file${info.isSymbolicLink() ? ' (a symlink)' : ''}`, `name the file itself; ${create}`);
  if (ownerUid !== undefined && info.uid !== ownerUid) {
    return fail(name, `${path} belongs to ${await userName(info.uid)}, not ${owner}`, `sudo chown ${owner}: ${path}`);
  }
  if ((info.mode & 0o077) !== 0) return fail(name, `${path} can be read by others (mode 0${(info.mode & 0o777).toString(8)})`, `sudo chmod 600 ${path}`);
  return undefined;
}
