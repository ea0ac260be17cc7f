import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { parse } from 'dotenv';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError, type StepName } from '../errors.js';
import { maskedValues } from '../util/mask.js';
import { endpointText } from './endpoint.js';
import { nodeBinaryKey } from './node-runtime.js';
import type { InstanceRecord } from './pidfile.js';

/**
 * The app's environment and what shapes it: duet.yml's `env`, the `env_files` (its secrets,
 * outside duet.yml), and a hash of the configuration a color is built and started with.
 *
 * Who reads the env files: duet itself, as its own user, unless the apps run as another user
 * (app_user): then they are root's and only systemd (PID 1) reads them, through the drop-in
 * `duet install` writes for each color's unit, so that duet's uid never holds the values.
 */
type EnvFilesReader = 'duet' | 'systemd';

export function envFilesReader(app: Pick<AppConfig, 'appUser'>): EnvFilesReader {
  return app.appUser === undefined ? 'duet' : 'systemd';
}

export interface EnvFiles {
  /** The values, when duet reads the files; undefined when systemd does (app_user). */
  values: Record<string, string> | undefined;
  /** One sha256 per file: of its bytes when duet reads it, else of its inode, size and times. */
  digests: string[];
}

/**
 * Read the app's env files, refusing one that others could read. `step` is the deploy step that
 * fails when one is missing or unsafe. Never returns or throws a value of one.
 */
export async function readEnvFiles(app: AppConfig, step: StepName): Promise<EnvFiles> {
  if (app.env_files.length === 0) return { values: {}, digests: [] };
  if (envFilesReader(app) === 'systemd') {
    return { values: undefined, digests: await Promise.all(app.env_files.map((path) => rootFileDigest(app, path, step))) };
  }
  const values: Record<string, string> = {};
  const digests: string[] = [];
  for (const path of app.env_files) {
    const bytes = await readOwnFile(path, `apps.${app.name}.env_files`, step, (error) => envFileError(app, path, error, step, "duet's own user"));
    digests.push(createHash('sha256').update(bytes).digest('hex'));
    Object.assign(values, parse(bytes));
  }
  return { values, digests };
}

function unsafeModeHint(path: string, owner: string): string {
  return `its values are secrets: \`chown ${owner} ${path} && chmod 600 ${path}\``;
}

/**
 * A secret duet reads itself (an env file, a notify URL): a regular file of duet's user that no
 * group or other may read. `label` names the setting in errors; `openError` says what to do when
 * the file cannot be opened.
 */
export async function readOwnFile(path: string, label: string, step: StepName, openError: (error: NodeJS.ErrnoException) => DuetError): Promise<Buffer> {
  let handle;
  try {
    // O_NOFOLLOW: the file checked is the file read, not what a symlink points at.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    throw openError(error as NodeJS.ErrnoException);
  }
  try {
    const info = await handle.stat();
    const uid = process.getuid?.();
    if (!info.isFile()) throw new DuetError(`${label}: ${path} is not a regular file`, { step });
    if (uid !== undefined && info.uid !== uid) {
      throw new DuetError(`${label}: ${path} belongs to uid ${info.uid}, not to duet's user (uid ${uid})`, {
        step,
        hint: unsafeModeHint(path, "duet's user"),
      });
    }
    if ((info.mode & 0o077) !== 0) {
      throw new DuetError(`${label}: ${path} can be read by others (mode ${modeText(info.mode)})`, {
        step,
        hint: unsafeModeHint(path, "duet's user"),
      });
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** app_user: the file is root's, 0600, and never opened by duet; its identity stands for its bytes. */
async function rootFileDigest(app: AppConfig, path: string, step: StepName): Promise<string> {
  let info;
  try {
    info = await stat(path, { bigint: true });
  } catch (error) {
    throw envFileError(app, path, error as NodeJS.ErrnoException, step, 'root');
  }
  if (!info.isFile()) throw new DuetError(`apps.${app.name}.env_files: ${path} is not a regular file`, { step });
  if (info.uid !== 0n || (Number(info.mode) & 0o077) !== 0) {
    throw new DuetError(`apps.${app.name}.env_files: ${path} must be root's and readable by root only (uid ${info.uid}, mode ${modeText(Number(info.mode))})`, {
      step,
      hint: `with app_user only systemd reads it: \`sudo chown root: ${path} && sudo chmod 600 ${path}\``,
    });
  }
  return identityDigest(info);
}

const identityDigest = (info: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string =>
  createHash('sha256').update(`${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`).digest('hex');

/**
 * The digest readEnvFiles records for `path`, without its checks of owner and mode: for `duet
 * doctor`, which runs as root and compares it with what the live color was started with.
 */
export async function envFileDigest(app: Pick<AppConfig, 'appUser'>, path: string): Promise<string> {
  if (envFilesReader(app) === 'systemd') return identityDigest(await stat(path, { bigint: true }));
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** ConfigHashes.envFiles: of the paths and their digests. */
export function envFilesHash(app: Pick<AppConfig, 'env_files'>, digests: string[]): string {
  return hashOf({ files: app.env_files, digests });
}

function envFileError(app: AppConfig, path: string, error: NodeJS.ErrnoException, step: StepName, owner: string): DuetError {
  const what =
    error.code === 'ENOENT'
      ? 'does not exist'
      : error.code === 'ELOOP'
        ? 'is a symlink (name the file itself)'
        : `cannot be read (${error.code ?? error.message})`;
  return new DuetError(`apps.${app.name}.env_files: ${path} ${what}`, {
    step,
    hint: `create it (dotenv lines NAME=value), owned by ${owner}, mode 0600; or remove it from env_files`,
    cause: error,
  });
}

const modeText = (mode: number): string => `0${(mode & 0o777).toString(8)}`;

/** The values to mask in logs and captured output. */
export function secretValues(files: EnvFiles): string[] {
  return maskedValues(Object.values(files.values ?? {}));
}

/**
 * The environment of the app's process, whoever starts it (duet, systemd) and whatever for
 * (start, release): duet.yml's env, the env files over it, and what duet sets over both.
 */
export function appProcessEnv(app: AppConfig, color: Color, revision: { sha: string; ref: string }, files: EnvFiles): Record<string, string> {
  return {
    ...app.env,
    ...files.values,
    PORT: endpointText(app.endpoints[color]),
    HOST: '127.0.0.1',
    DUET_COLOR: color,
    DUET_REVISION: revision.sha,
    DUET_REF: revision.ref,
  };
}

/** The environment of install and build: the app's env and, of the env files, only the build_env names. */
export function appBuildEnv(app: AppConfig, color: Color, target: { sha: string; ref: string }, files: EnvFiles): Record<string, string> {
  const picked = Object.fromEntries(app.build_env.flatMap((name) => (files.values?.[name] !== undefined ? [[name, files.values[name]]] : [])));
  return { ...app.env, ...picked, DUET_COLOR: color, DUET_REVISION: target.sha, DUET_REF: target.ref };
}

/**
 * What a color holds besides its commit: a hash of what shapes its build (`build`) and of what
 * shapes its process (`run`), and of the env files alone (`envFiles`), so that status can say
 * which changed. Recorded with the prepared checkout and the started instance, compared by each
 * deploy and rollback. Hashes only: no value of an env file is ever recorded.
 */
export interface ConfigHashes {
  build: string;
  run: string;
  envFiles: string;
}

function configHashes(app: AppConfig, files: EnvFiles): ConfigHashes {
  const node = nodeBinaryKey(app.env.PATH ?? process.env.PATH);
  const envFiles = envFilesHash(app, files.digests);
  const build = hashOf({
    install: app.install ?? null,
    build: app.build,
    prune: app.prune,
    // Run before each start, but it shapes what the color is prepared with (the schema it expects).
    release: app.release ?? null,
    env: app.env,
    build_env: app.build_env,
    // The files reach the build only through build_env: without it, a changed secret is no rebuild.
    envFiles: app.build_env.length > 0 ? envFiles : null,
    node,
    source: app.source,
    artifact: app.artifact ?? null,
  });
  const run = hashOf({ start: app.start, env: app.env, envFiles, node });
  return { build, run, envFiles };
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** The env files and the hashes of the configuration now, for a step that builds or starts a color. */
export interface AppSettings {
  files: EnvFiles;
  hashes: ConfigHashes;
}

export async function appSettings(app: AppConfig, step: StepName): Promise<AppSettings> {
  const files = await readEnvFiles(app, step);
  return { files, hashes: configHashes(app, files) };
}

/** What an instance record says it was started with. */
export function startedWith(settings: AppSettings): Pick<InstanceRecord, 'config' | 'envFiles'> {
  return { config: settings.hashes.run, envFiles: settings.hashes.envFiles };
}

/** What changed since a color was built or started: only its env files, or more. */
export type ConfigChange = 'configuration' | 'environment';

/**
 * undefined when the color was built (`prepared`) and started (`running`) with the configuration
 * `hashes` describes; 'environment' when only the env files changed since its start.
 */
export function configChangeOf(
  hashes: ConfigHashes,
  prepared: { config?: string } | undefined,
  running: Pick<InstanceRecord, 'config' | 'envFiles'> | undefined,
): ConfigChange | undefined {
  if (prepared !== undefined && prepared.config !== hashes.build) return 'configuration';
  if (running === undefined || running.config === hashes.run) return undefined;
  return running.envFiles === hashes.envFiles ? 'configuration' : 'environment';
}
