import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { BUILD_LIMITS_DEFAULTS, type BuildLimits } from './build-limits.js';
import { resolveNotify, type NotifyTarget } from './notify.js';
import { checkPorts } from './ports.js';
import { configSchema, type Color, type RawApp, type RawConfig } from './schema.js';
import { STEP_SOCKET, appPaths, appStepSocket, managedNginxPaths, type AppPaths, type ManagedNginxPaths } from './paths.js';

interface NginxSettings {
  managed: ManagedNginxPaths | undefined;
  binary: string;
  confDir: string;
  testCmd: string[];
  reloadCmd: string[];
  /** Where the master's pid is: the managed one's, or nginx.pid_file. */
  pidFile: string;
}

/** Where a color listens: a loopback port, or a unix socket path in socket mode. */
export type Endpoint = { kind: 'port'; port: number } | { kind: 'socket'; path: string };

export type AppConfig = RawApp & {
  name: string;
  paths: AppPaths;
  /** Where each color listens, chosen by `switch` here once so no code after the load asks it. */
  endpoints: Record<Color, Endpoint>;
  /** The top-level `runner`, carried by each app so the instance code needs only the app. */
  runner: RawConfig['runner'];
  /** The top-level `app_user`: the apps' own uid (runner: systemd), or undefined for duet's. */
  appUser: string | undefined;
  /** With app_user: the socket the installs and builds run through, as that user; its own one (appStepSocket) when it has env_files. */
  stepSocket: string | undefined;
  /** `<conf_dir>/duet-<app>.d`: the operator's own lines, included in duet's server block. */
  includeDir: string;
  /** tls files or acme: where nginx reads the certificate chain and its key. */
  certificate: CertificatePaths | undefined;
  /** The top-level build_limits with this app's overrides: what its install and build may take. */
  buildLimits: BuildLimits;
  /** github.api_url: where a source: release_asset app's artifact is asked for. */
  githubApiUrl: string;
};

export interface CertificatePaths {
  cert: string;
  key: string;
}

/** certbot's name for an app's certificate: its files are <config_dir>/live/<this>/. */
export function acmeCertName(app: string): string {
  return `duet-${app}`;
}

/**
 * certbot's renewal conf for the app's certificate: it exists once a certificate was issued, and
 * unlike live/ and archive/ (0700 root) its directory is readable by duet's user.
 */
export function acmeRenewalConf(app: AppConfig): string {
  return join(app.tls.acme.config_dir, 'renewal', `${acmeCertName(app.name)}.conf`);
}

export interface Config {
  file: string;
  /** sha256 of the file's text: which duet.yml a running duet serve has loaded (reload.ts). */
  digest: string;
  stateDir: string;
  nginx: NginxSettings;
  server: RawConfig['server'];
  github: RawConfig['github'];
  /** The system user the units run as (duet install, doctor). */
  user: string;
  runner: RawConfig['runner'];
  appUser: string | undefined;
  /** The top-level build_limits (duet-build.slice takes its memory limits from them). */
  buildLimits: BuildLimits;
  /** Where a deploy's outcome is told (notify), defaults filled in. */
  notify: NotifyTarget[];
  apps: Map<string, AppConfig>;
}

/** --config FILE, else $DUET_CONFIG, else ./duet.yml, else /etc/duet/duet.yml. */
export function findConfigFile(explicit: string | undefined, env = process.env, cwd = process.cwd()): string {
  if (explicit) return resolve(cwd, explicit);
  if (env.DUET_CONFIG) return resolve(cwd, env.DUET_CONFIG);
  const local = join(cwd, 'duet.yml');
  if (existsSync(local)) return local;
  return '/etc/duet/duet.yml';
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${file}: cannot read the configuration (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      'pass --config FILE, set DUET_CONFIG, or create ./duet.yml',
    );
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): Config {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(`${file}: not valid YAML: ${document.errors[0]!.message}`);
  }
  const result = configSchema.safeParse(document.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(`${file}: ${formatIssues(result.error.issues)}`, 'see docs/configuration.md');
  }
  checkPorts(result.data, file);
  return { ...resolveConfig(result.data, file), digest: createHash('sha256').update(text).digest('hex') };
}

function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(top level)'}: ${explain(issue)}`).join('\n  ');
}

/** Zod reports a bad record key as "Invalid key in record"; the reason is one level down. */
function explain(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_key' && issue.issues[0]) return `invalid name: ${issue.issues[0].message}`;
  return issue.message;
}

function resolveConfig(raw: RawConfig, file: string): Omit<Config, 'digest'> {
  const stateDir = resolve(raw.state_dir);
  const apps = new Map<string, AppConfig>();
  const nginx = resolveNginx(raw, stateDir);
  const buildLimits: BuildLimits = { ...BUILD_LIMITS_DEFAULTS, ...raw.build_limits };
  for (const [name, app] of Object.entries(raw.apps)) {
    const paths = appPaths(stateDir, name);
    apps.set(name, {
      includeDir: join(nginx.confDir, `duet-${name}.d`),
      certificate: certificatePaths(name, app),
      ...app,
      name,
      paths,
      endpoints: endpointsOf(app, paths),
      runner: raw.runner,
      appUser: raw.app_user,
      stepSocket: raw.app_user === undefined ? undefined : app.env_files.length > 0 ? appStepSocket(name) : STEP_SOCKET,
      buildLimits: { ...buildLimits, ...app.build_limits },
      githubApiUrl: raw.github.api_url,
    });
  }
  const notify = resolveNotify(raw.notify, new Set(apps.keys()));
  if (notify.unknownApp) throw new ConfigError(`${file}: ${notify.unknownApp}`, 'name an app of apps, or remove it');
  const { server, github, user, runner } = raw;
  return { file, stateDir, nginx, server, github, user, runner, appUser: raw.app_user, buildLimits, notify: notify.targets, apps };
}

function endpointsOf(app: RawApp, paths: AppPaths): Record<Color, Endpoint> {
  const of = (color: Color): Endpoint => (app.switch === 'socket' ? { kind: 'socket', path: paths.socket[color] } : { kind: 'port', port: app.ports[color] });
  return { blue: of('blue'), green: of('green') };
}

function certificatePaths(name: string, app: RawApp): CertificatePaths | undefined {
  const { tls } = app;
  if (tls.mode === 'files') return { cert: resolve(tls.cert!), key: resolve(tls.key!) };
  if (tls.mode === 'off') return undefined;
  const live = join(tls.acme.config_dir, 'live', acmeCertName(name));
  return { cert: join(live, 'fullchain.pem'), key: join(live, 'privkey.pem') };
}

function resolveNginx(raw: RawConfig, stateDir: string): NginxSettings {
  if (!raw.nginx.managed) {
    return {
      managed: undefined,
      binary: raw.nginx.binary,
      confDir: resolve(raw.nginx.conf_dir),
      testCmd: raw.nginx.test_cmd,
      reloadCmd: raw.nginx.reload_cmd,
      pidFile: resolve(raw.nginx.pid_file),
    };
  }
  // A managed nginx is ours alone: its commands are derived from its prefix, not configured.
  const paths = managedNginxPaths(stateDir);
  const base = [raw.nginx.binary, '-p', paths.prefix, '-c', paths.mainConf, '-e', paths.errorLog];
  return {
    managed: paths,
    binary: raw.nginx.binary,
    confDir: paths.confDir,
    testCmd: [...base, '-t', '-q'],
    reloadCmd: [...base, '-s', 'reload'],
    pidFile: paths.pidFile,
  };
}

/** The app a command acts on: named, or the only one configured. */
export function pickApp(config: Config, name: string | undefined): AppConfig {
  if (name !== undefined) {
    const app = config.apps.get(name);
    if (!app) {
      throw new ConfigError(`no app named "${name}" in ${config.file}`, `configured apps: ${[...config.apps.keys()].join(', ')}`);
    }
    return app;
  }
  if (config.apps.size === 1) return [...config.apps.values()][0]!;
  throw new ConfigError(`${config.file} configures ${config.apps.size} apps; name one`, `configured apps: ${[...config.apps.keys()].join(', ')}`);
}
