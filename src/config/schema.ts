import { z } from 'zod';
import { artifactSchema, checkArtifactSource, sourceSchema } from './artifact.js';
import { appBuildLimitsSchema, buildLimitsSchema } from './build-limits.js';
import { waitForChecksSchema } from './checks.js';
import { notifySchema } from './notify.js';

/**
 * The shape of duet.yml. Every key has a default an operator would pick, so a minimal file names
 * only its apps. Objects are strict: a misspelt key is an error, not a silently ignored setting.
 */

const command = z.array(z.string().min(1)).min(1, 'an argument array such as [nginx, -t]');
const port = z.number().int().min(1).max(65535);
const color = z.enum(['blue', 'green']);
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

/** `8080`, or `"127.0.0.1:8080"` to bind the public server to one address only. */
const listen = z.union([port, z.string().regex(/^(?:\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):\d{1,5}$/, 'a port, or "address:port"')]);

const healthSchema = z
  .object({
    path: z.string().startsWith('/').default('/health'),
    timeout_s: z.number().positive().default(60),
    /** After the switch, how long the new color is watched before the deploy counts as a success; 0: no watch. */
    watch_s: z.number().min(0).default(10),
    /**
     * How long a running color's failing (or slow) health checks must last before duet serve acts
     * on them: a failover, a restart. Slow is not dead; an exit is judged at once.
     */
    failover_after_s: z.number().positive().default(30),
  })
  .strict();

/** Let's Encrypt's production directory. */
const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

const hostName = z.string().regex(/^[\w.*-]+$/, 'a host name');

const acmeSchema = z
  .object({
    directory_url: z.string().url().default(LETS_ENCRYPT_DIRECTORY),
    /** Let's Encrypt's account address; unset: an account without one (it sends no mail anyway). */
    email: z.string().email().optional(),
    /** certbot's --config-dir: the certificate is <config_dir>/live/duet-<app>/. */
    config_dir: z.string().startsWith('/').default('/etc/letsencrypt'),
    /** The certbot command and any options of its own (--work-dir, --logs-dir, --no-verify-ssl). */
    certbot: command.default(['certbot']),
  })
  .strict();

/**
 * HTTPS in duet's own server block. off: plain HTTP on `listen`. files: the operator's
 * certificate and key. acme: certbot obtains and renews them (HTTP-01 through `listen`).
 */
const tlsSchema = z
  .object({
    mode: z.enum(['off', 'files', 'acme']).default('off'),
    /** The HTTPS server's port (or "address:port"); `listen` stays the plain HTTP one. */
    listen: listen.default(443),
    /** files: the certificate chain (PEM, leaf first) and its private key. */
    cert: z.string().startsWith('/', 'an absolute path').optional(),
    key: z.string().startsWith('/', 'an absolute path').optional(),
    /** Plain HTTP answers a 301 to https (except the ACME challenge); false: it serves the app too. */
    redirect_http: z.boolean().default(true),
    /** Strict-Transport-Security's max-age; 0: no header (turn it on once HTTPS is proven). */
    hsts_max_age_s: z.number().int().min(0).default(0),
    acme: acmeSchema.default({ directory_url: LETS_ENCRYPT_DIRECTORY, config_dir: '/etc/letsencrypt', certbot: ['certbot'] }),
  })
  .strict()
  .superRefine((tls, ctx) => {
    if (tls.mode !== 'files') return;
    for (const key of ['cert', 'key'] as const) {
      if (tls[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `mode: files needs tls.${key}, the path of the PEM file` });
    }
  });

const deployOnSchema = z
  .object({
    branches: z.array(z.string().min(1)).default(['main']),
    tags: z.array(z.string().min(1)).default([]),
    releases: z.boolean().default(false),
    prereleases: z.boolean().default(false),
    wait_for_checks: waitForChecksSchema.optional(),
  })
  .strict();

/** Directories of state_dir that duet itself uses or may use: an app of that name would share it. */
const RESERVED_APP_NAMES = new Set(['nginx', 'run', 'logs', 'tmp', 'cache', 'sockets', 'credentials', 'ssh', 'serve', 'acme']);

const appSchema = z
  .object({
    repo: z
      .string()
      .regex(/^[\w.-]+\/[\w.-]+$/, 'a GitHub "owner/name"')
      .optional(),
    clone_url: z.string().min(1),
    listen: listen.default(8080),
    server_name: z
      .string()
      .regex(/^[\w.*-]+$/, 'a host name or _')
      .default('_'),
    /** More names of the same server (server_name's others; with tls acme, on the certificate too). */
    aliases: z.array(hostName).default([]),
    tls: tlsSchema.default({
      mode: 'off',
      listen: 443,
      redirect_http: true,
      hsts_max_age_s: 0,
      acme: { directory_url: LETS_ENCRYPT_DIRECTORY, config_dir: '/etc/letsencrypt', certbot: ['certbot'] },
    }),
    switch: z.enum(['port', 'socket']).default('port'),
    /**
     * switch: socket only: duet (runner: process) or a socket unit (runner: systemd) binds each
     * color's socket and hands it to the app as fd 3 (LISTEN_FDS=1), and keeps it while the app
     * restarts: requests wait for the restart instead of being refused (docs/deploy.md, "Socket
     * activation").
     */
    socket_activation: z.boolean().default(false),
    ports: z.object({ blue: port, green: port }).strict().default({ blue: 20201, green: 20202 }),
    /** Unset: the package manager's own, chosen by the lockfile (npm ci, pnpm or yarn through corepack). */
    install: z
      .string()
      .nullish()
      .transform((value) => value ?? undefined),
    /** Remove the devDependencies after the build (npm prune --omit=dev). */
    prune: z.boolean().default(true),
    build: z.string().default('npm run build --if-present'),
    start: z.string().default('npm start'),
    /** Run after the update and before the start, in the new color's checkout: the database migrations (docs/deploy.md, "The release step"). */
    release: z.string().trim().min(1).optional(),
    release_timeout_s: z.number().positive().default(600),
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).default({}),
    /** dotenv files of the app's secrets, outside duet.yml (docs/configuration.md, "Secrets"). */
    env_files: z.array(z.string().startsWith('/', 'an absolute path')).default([]),
    /** Names the env_files must define: a deploy without one fails at update. */
    secrets: z.array(envName).default([]),
    /** Names from the env_files that the install and build get too; they get none of them otherwise. */
    build_env: z.array(envName).default([]),
    health: healthSchema.default({ path: '/health', timeout_s: 60, watch_s: 10, failover_after_s: 30 }),
    /** duet serve may move traffic to the standby when the live color is dead or stays unhealthy. */
    failover: z.boolean().default(true),
    /** The other color as nginx's fallback: it gets a request the live one refused (never one the live one received). */
    fallback: z.boolean().default(true),
    standby: z.enum(['keep', 'stop']).default('keep'),
    drain_s: z.number().min(0).default(5),
    /** How many releases that passed their watch are kept built for `duet rollback --to/--steps` (docs/deploy.md, "Kept releases"). */
    keep_releases: z.number().int().min(0).max(50).default(3),
    stop_timeout_s: z.number().positive().default(10),
    verify_timeout_s: z.number().positive().default(10),
    deploy_on: deployOnSchema.default({ branches: ['main'], tags: [], releases: false, prereleases: false }),
    /** Overrides of the top-level build_limits for this app's installs and builds. */
    build_limits: appBuildLimitsSchema.default({}),
    /** Where the built files come from: built here (git), or a prebuilt artifact (docs/deploy.md, "Prebuilt artifacts"). */
    source: sourceSchema,
    artifact: artifactSchema.optional(),
  })
  .strict()
  .superRefine(checkArtifactSource)
  .refine((app) => app.ports.blue !== app.ports.green, {
    message: 'blue and green need different ports',
    path: ['ports'],
  })
  .refine((app) => !app.socket_activation || app.switch === 'socket', {
    message: 'needs switch: socket: a port held by duet would refuse every other process that starts the color; set switch: socket or remove socket_activation',
    path: ['socket_activation'],
  })
  .refine((app) => !app.deploy_on.wait_for_checks || app.repo !== undefined, {
    message: 'wait_for_checks reads the commit\'s checks on GitHub: set repo ("owner/name")',
    path: ['deploy_on', 'wait_for_checks'],
  })
  .refine((app) => app.tls.mode !== 'acme' || (app.server_name !== '_' && !app.server_name.includes('*')), {
    message: 'tls.mode acme needs a server_name that names the host (not _ nor a wildcard): the CA validates that name over HTTP',
    path: ['server_name'],
  });

const nginxSchema = z
  .object({
    managed: z.boolean().default(false),
    conf_dir: z.string().min(1).default('/etc/nginx/conf.d'),
    test_cmd: command.default(['nginx', '-t']),
    reload_cmd: command.default(['nginx', '-s', 'reload']),
    binary: z.string().min(1).default('nginx'),
    /** The system nginx's master pid file: lets a port-mode verify see when a reload is complete. */
    pid_file: z.string().min(1).default('/run/nginx.pid'),
  })
  .strict();

const serverSchema = z
  .object({
    /** Where `duet serve` listens: behind nginx or a tunnel in production, so loopback by default. */
    listen: z
      .string()
      .regex(/^(?:\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):\d{1,5}$/, '"address:port"')
      .default('127.0.0.1:9100'),
    /** The URL GitHub users reach duet at; commit statuses link to <public_url>/deploys/<id>. */
    public_url: z.string().url().optional(),
    /** true: the dashboard at / needs no sign-in (the API always needs the token). */
    public_dashboard: z.boolean().default(false),
  })
  .strict();

const githubSchema = z
  .object({
    api_url: z.string().url().default('https://api.github.com'),
    /** `{app}` is replaced by the app's name. */
    status_context: z.string().min(1).max(100).default('duet/{app}'),
    /** Also create GitHub Deployments (environment production) and their statuses. */
    deployments: z.boolean().default(false),
    /** GitHub's secondary rate limit for requests that create content (statuses, deployments). */
    writes_per_minute: z.number().int().positive().default(80),
  })
  .strict();

export const configSchema = z
  .object({
    state_dir: z.string().min(1).default('/var/lib/duet'),
    /** The system user `duet install` creates and the systemd units run duet (and the apps) as. */
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a system user name such as duet')
      .default('duet'),
    /** process: detached process groups (works without systemd); systemd: one duet-app@ unit per color. */
    runner: z.enum(['process', 'systemd']).default('process'),
    /**
     * runner: systemd only: the system user the apps run as, instead of `user`. Another uid keeps
     * duet's credentials, memory and environment out of the app's reach (README, "Security model").
     */
    app_user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a system user name such as duet-app')
      .refine((name) => name !== 'root', 'the apps must not run as root')
      .optional(),
    nginx: nginxSchema.default({
      managed: false,
      conf_dir: '/etc/nginx/conf.d',
      test_cmd: ['nginx', '-t'],
      reload_cmd: ['nginx', '-s', 'reload'],
      binary: 'nginx',
      pid_file: '/run/nginx.pid',
    }),
    server: serverSchema.default({ listen: '127.0.0.1:9100', public_dashboard: false }),
    /** What an install, build or prune may take of the machine (docs/configuration.md, build_limits). */
    build_limits: buildLimitsSchema.default({}),
    /** Who hears of a deploy's outcome (docs/notifications.md). */
    notify: notifySchema.default([]),
    github: githubSchema.default({ api_url: 'https://api.github.com', status_context: 'duet/{app}', deployments: false, writes_per_minute: 80 }),
    apps: z
      .record(
        z
          .string()
          .regex(/^[a-z0-9-]+$/, 'app names use a-z, 0-9 and -')
          .refine(
            (name) => !RESERVED_APP_NAMES.has(name),
            `is reserved: duet keeps its own files in <state_dir>/<that name> (reserved: ${[...RESERVED_APP_NAMES].join(', ')}); rename the app`,
          ),
        appSchema,
      )
      .refine((apps) => Object.keys(apps).length > 0, 'at least one app'),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.app_user === undefined) return;
    if (config.runner !== 'systemd') {
      ctx.addIssue({
        code: 'custom',
        path: ['app_user'],
        message: 'needs runner: systemd: only systemd can start the apps as another user without duet holding root; set runner: systemd or remove app_user',
      });
    }
    if (config.app_user === config.user) {
      ctx.addIssue({ code: 'custom', path: ['app_user'], message: `is duet's own user (${config.user}): name another user, or remove app_user` });
    }
  });

export type Color = z.infer<typeof color>;
export type RawConfig = z.infer<typeof configSchema>;
export type RawApp = z.infer<typeof appSchema>;
export const colors: readonly Color[] = ['blue', 'green'];

export function otherColor(c: Color): Color {
  return c === 'blue' ? 'green' : 'blue';
}

export function parseColor(value: string | undefined): Color | undefined {
  return color.safeParse(value).success ? (value as Color) : undefined;
}
