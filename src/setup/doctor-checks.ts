import { constants, existsSync } from 'node:fs';
import { access, readFile, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { colors } from '../config/schema.js';
import { createGitHubClient } from '../util/github-client.js';
import { CLONE_REMOTE, cloneRemoteEnv, redact } from '../instance/checkout.js';
import { packageManagerOf } from '../instance/package-manager.js';
import { checkChecksAccess, checkStatusAccess } from './github-access.js';
import { capture, fail, oneLine, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { JOURNAL_GROUP, LINGER_DIR, POLKIT_RULES_FILE, underRoot } from './layout.js';
import { groupsOf, isEnabled, isRoot, lookupUser, userName } from './system.js';
import { ENABLED_UNITS, renderActivationDropIns, renderEnvDropIns, renderPolkitRule, renderUnits } from './units.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export async function checkStateDir(ctx: DoctorContext): Promise<CheckResult> {
  const dir = ctx.setup.config.stateDir;
  const { user } = ctx.setup;
  const s = await stat(dir).catch(() => undefined);
  if (!s) return fail('state dir', `${dir} does not exist`, 'sudo duet install (creates it for the service user)');
  if (!s.isDirectory()) return fail('state dir', `${dir} is not a directory`, 'move it away and run sudo duet install');
  const writable = await access(dir, constants.W_OK).then(
    () => true,
    () => false,
  );
  if (!writable) return fail('state dir', `${dir} is not writable by ${isRoot() ? 'root' : 'this user'}`, `sudo chown -R ${user}: ${dir}`);
  if (isRoot() && user !== 'root') {
    // Root can write anywhere; what matters is whether the service user can.
    const ids = await lookupUser(user);
    if (!ids) return fail('state dir', `the user ${user} does not exist`, 'sudo duet install (creates it)');
    if (s.uid !== ids.uid) return fail('state dir', `${dir} belongs to ${await userName(s.uid)}, not ${user}`, `sudo chown -R ${user}: ${dir}`);
  }
  return pass('state dir', `${dir} is writable by ${user}`);
}

/** `git ls-remote` as the service user would run it: with its ssh keys, never prompting. */
export async function checkCloneUrl(ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `repo ${app.name}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...cloneRemoteEnv(app.clone_url),
    GIT_TERMINAL_PROMPT: '0',
    GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes',
  };
  if (ctx.runAs) env.HOME = ctx.runAs.home;
  const { code, output } = await capture(['git', 'ls-remote', '--heads', '--', CLONE_REMOTE], {
    env,
    timeoutMs: 60_000,
    uid: ctx.runAs?.uid,
    gid: ctx.runAs?.gid,
  });
  const url = redact(app.clone_url);
  const as = ctx.runAs ? ` as ${ctx.setup.user}` : '';
  const branches = output.split('\n').filter(Boolean).length;
  if (code === 0) return pass(name, `${url} is reachable${as} (${branches} branch${branches === 1 ? '' : 'es'})`);
  const dubious = /detected dubious ownership in repository at '([^']+)'/.exec(output)?.[1];
  if (dubious) {
    return fail(
      name,
      `git ls-remote ${url} fails${as}: ${redact(gitProblem(output))}`,
      `the repository belongs to another user, and git refuses it: sudo git config --system --add safe.directory ${dubious}, or give it to ${ctx.setup.user}`,
    );
  }
  return fail(
    name,
    `git ls-remote ${url} fails${as}: ${redact(gitProblem(output))}`,
    `check apps.${app.name}.clone_url; a private repository needs a deploy key in ${join(ctx.setup.config.stateDir, '.ssh')} (the ${ctx.setup.user} user's home)`,
  );
}

export async function checkGitHubToken(ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `github ${app.name}`;
  if (!app.repo) return pass(name, 'no repo configured: no webhooks or commit statuses for this app');
  const tokenFile = join(ctx.layout.credentialsDir, 'github-token');
  if (ctx.secrets instanceof Error) return fail(name, ctx.secrets.message, 'fix the secret variables or files named above');
  const token = ctx.secrets.githubToken;
  if (!token) {
    const unsure = isRoot() ? '' : ' or unreadable (run sudo duet doctor)';
    return fail(
      name,
      `no GitHub token (DUET_GITHUB_TOKEN or its file${unsure}): no commit statuses`,
      `put a token with "Commit statuses: write" in ${tokenFile}, then sudo duet install`,
    );
  }
  const client = createGitHubClient({ apiUrl: ctx.setup.config.github.api_url, token, retries: 0, timeoutMs: 15_000 });
  const result = await checkStatusAccess(client, app.repo, { deployments: ctx.setup.config.github.deployments, tokenFile });
  if (!result.ok || !app.deploy_on.wait_for_checks) return { name, ...result };
  const checks = await checkChecksAccess(client, app.repo, tokenFile);
  return { name, ...checks, detail: checks.ok ? `${result.detail}; ${checks.detail}` : checks.detail };
}

export function checkWebhookSecret(ctx: DoctorContext): CheckResult {
  const file = join(ctx.layout.credentialsDir, 'webhook-secret');
  if (ctx.secrets instanceof Error) return fail('webhook secret', ctx.secrets.message, 'fix the secret variables or files named above');
  if (!ctx.secrets.webhookSecret) {
    // The credentials dir is root's: a non-root doctor cannot tell "missing" from "unreadable".
    const unsure = isRoot() ? '' : ` (or unreadable: run sudo duet doctor to read ${ctx.layout.credentialsDir})`;
    return fail(
      'webhook secret',
      `not set${unsure}: duet serve refuses to start without it`,
      `sudo sh -c 'umask 077; openssl rand -hex 32 > ${file}', and the same value on GitHub`,
    );
  }
  const source = ctx.env.DUET_WEBHOOK_SECRET ? 'DUET_WEBHOOK_SECRET' : `${ctx.env.DUET_WEBHOOK_SECRET_FILE}`;
  return pass('webhook secret', `set (${source})`);
}

/**
 * A deploy rewrites one checkout while the other stays, and install may rebuild node_modules
 * there: the free space should hold two copies of the largest checkout (or, before the first
 * deploy, two of minCheckoutBytes).
 */
export async function checkDisk(ctx: DoctorContext): Promise<CheckResult> {
  const dir = ctx.setup.config.stateDir;
  const fs = await statfs(dir).catch(() => undefined);
  if (!fs) return fail('disk', `cannot measure the file system of ${dir}`, 'sudo duet install (creates the state dir)');
  let largest = 0;
  for (const app of ctx.setup.config.apps.values()) {
    for (const color of colors) {
      const { code, output } = await capture(['du', '-sk', app.paths.checkout[color]]);
      if (code === 0) largest = Math.max(largest, Number(output.split(/\s/)[0]) * 1024);
    }
  }
  const need = 2 * Math.max(largest, ctx.minCheckoutBytes);
  const free = fs.bavail * fs.bsize;
  const show = (bytes: number): string => (bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.ceil(bytes / MiB)} MiB`);
  const basis = largest > ctx.minCheckoutBytes ? `two checkouts of ${show(largest)}` : `two checkouts of at least ${show(ctx.minCheckoutBytes)}`;
  if (free < need)
    return fail(
      'disk',
      `${show(free)} free on ${dir}, need ${show(need)} (${basis})`,
      'free some space (old logs: <state_dir>/<app>/logs, npm cache) or grow the disk',
    );
  return pass('disk', `${show(free)} free on ${dir} (${basis}: ${show(need)})`);
}

/** The units are the ones this duet and config would install, and enabled (linked in .wants). */
export async function checkUnits(ctx: DoctorContext): Promise<CheckResult> {
  const expected = await renderUnits(ctx.setup, ctx.layout, ctx.root);
  const problems: string[] = [];
  for (const unit of expected) {
    const onDisk = await readFile(underRoot(ctx.root, unit.path), 'utf8').catch(() => undefined);
    if (onDisk === undefined) problems.push(`${unit.name} is not installed`);
    else if (onDisk !== unit.content) problems.push(`${unit.name} differs from what duet install writes now`);
  }
  for (const dropIn of renderEnvDropIns(ctx.setup)) {
    const onDisk = await readFile(underRoot(ctx.root, dropIn.path), 'utf8').catch(() => undefined);
    if (onDisk !== dropIn.content) problems.push(`${dropIn.path} is not what duet install writes for env_files now`);
  }
  for (const dropIn of renderActivationDropIns(ctx.setup)) {
    const onDisk = await readFile(underRoot(ctx.root, dropIn.path), 'utf8').catch(() => undefined);
    if (onDisk !== dropIn.content) problems.push(`${dropIn.path} is not what duet install writes for socket_activation now`);
  }
  const userManager = ctx.setup.runner === 'systemd' && ctx.setup.appUser === undefined;
  if (userManager && !existsSync(underRoot(ctx.root, join(LINGER_DIR, ctx.setup.user)))) {
    problems.push(`lingering is off for ${ctx.setup.user}: its systemd, which runs the app units, does not start at boot`);
  }
  if (problems.length) return fail('units', problems.join('; '), 'sudo duet install (then systemctl daemon-reload is run for you)');
  const disabled: string[] = [];
  for (const unit of ENABLED_UNITS) if (!(await isEnabled(unit, ctx.root))) disabled.push(unit);
  if (disabled.length) return fail('units', `${disabled.join(', ')} not enabled: nothing starts duet at boot`, `sudo systemctl enable ${disabled.join(' ')}`);
  return pass('units', `${expected.map((u) => u.name).join(', ')} installed; ${ENABLED_UNITS.join(', ')} enabled`);
}

/**
 * runner: systemd: the service user's own systemd answers. As that user (or with XDG_RUNTIME_DIR
 * set), its own manager is asked; as root, the user's manager through `--machine <user>@`.
 */
export async function checkUserSystemd(ctx: DoctorContext): Promise<CheckResult> {
  const name = 'user systemd';
  const { user } = ctx.setup;
  const own = !isRoot() || user === 'root' || Boolean(ctx.env.XDG_RUNTIME_DIR);
  // `show`, not `is-system-running`: that one answers "offline" without asking on a machine not
  // booted with systemd, which is where the tests run a user manager.
  const query = ['show', '--property=SystemState', '--value'];
  const argv = own ? ['systemctl', '--user', ...query] : ['systemctl', '--user', '--machine', `${user}@`, ...query];
  const env = own && !ctx.env.XDG_RUNTIME_DIR ? { ...ctx.env, XDG_RUNTIME_DIR: `/run/user/${process.getuid?.() ?? 0}` } : ctx.env;
  const { output } = await capture(argv, { env, timeoutMs: 10_000 });
  const state = output.trim().split('\n').at(-1)?.trim() ?? '';
  // degraded: it runs, and some unit failed (an app color that crashed, say): still reachable.
  if (['running', 'degraded', 'starting', 'initializing'].includes(state)) {
    return pass(name, `${user}'s systemd is ${state}; it runs the app units (runner: systemd)`);
  }
  // Seen on a minimal Debian: root reaches the user's manager over that user's D-Bus session,
  // which dbus-user-session provides; user@.service itself needs pam_systemd (libpam-systemd).
  const missingPieces = /Transport endpoint is not connected|XDG_RUNTIME_DIR is not set|pam_systemd/.test(output);
  return fail(
    name,
    `${user}'s systemd does not answer (${argv.join(' ')}: ${oneLine(output) || 'no output'})`,
    missingPieces
      ? `sudo apt-get install libpam-systemd dbus-user-session, then sudo loginctl enable-linger ${user} (duet install does), then run doctor again`
      : `sudo loginctl enable-linger ${user} (duet install does), then run doctor again`,
  );
}

/** Debian's polkitd, which PID 1 asks whether the service user may start an app unit. */
const POLKITD = '/usr/lib/polkit-1/polkitd';

/**
 * app_user: the user exists, polkit is there and has duet's rule (without them every start of a
 * color fails with "Interactive authentication required"), and the service user reads the
 * system journal the app units log to.
 */
export async function checkAppUser(ctx: DoctorContext, appUser: string): Promise<CheckResult> {
  const name = 'app user';
  const { user } = ctx.setup;
  if (!(await lookupUser(appUser, ctx.root))) return fail(name, `the app user ${appUser} does not exist`, 'sudo duet install (creates it)');
  if (!existsSync(underRoot(ctx.root, POLKITD))) {
    return fail(name, `polkitd is not installed: systemd refuses ${user} every start of an app unit`, 'sudo apt-get install polkitd, then sudo duet install');
  }
  const rule = await readFile(underRoot(ctx.root, POLKIT_RULES_FILE), 'utf8').catch(() => undefined);
  if (rule !== (await renderPolkitRule(ctx.setup))) {
    return fail(name, `${POLKIT_RULES_FILE} ${rule === undefined ? 'is missing' : 'differs from what duet install writes'}`, 'sudo duet install');
  }
  if (ctx.root === '/' && !(await groupsOf(user)).includes(JOURNAL_GROUP)) {
    return fail(name, `${user} is not in ${JOURNAL_GROUP}: duet cannot read the app units' output for its errors`, 'sudo duet install (adds it)');
  }
  return pass(name, `the apps run as ${appUser}; ${POLKIT_RULES_FILE} lets ${user} start and stop their units; ${user} reads their journal`);
}

/**
 * The package manager each checkout's lockfile asks for can run, as the service user would run
 * it: npm, or pnpm/yarn through corepack (which downloads the version `packageManager` names on
 * first use, so this also tells a registry that corepack cannot verify). Before the first deploy
 * there is no checkout: then npm and corepack themselves.
 */
export async function checkPackageManager(ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `package manager ${app.name}`;
  const checkouts = colors.map((color) => app.paths.checkout[color]).filter((dir) => existsSync(join(dir, 'package.json')));
  const asked = checkouts.length > 0 ? checkouts.map((dir) => ({ dir, manager: packageManagerOf(dir) })) : [{ dir: undefined, manager: undefined }];
  const found: string[] = [];
  for (const { dir, manager } of asked) {
    const argv = manager?.versionCommand ?? ['corepack', '--version'];
    const env = { ...process.env, ...manager?.toolEnv, ...(ctx.runAs ? { HOME: ctx.runAs.home } : {}) };
    const [npm, tool] = await Promise.all([
      capture(['npm', '--version'], { env, uid: ctx.runAs?.uid, gid: ctx.runAs?.gid }),
      capture(argv, { env, cwd: dir, timeoutMs: 120_000, uid: ctx.runAs?.uid, gid: ctx.runAs?.gid }),
    ]);
    if (npm.code !== 0) return fail(name, `npm does not run: ${oneLine(npm.output)}`, 'install Node.js 20 with npm (Debian: apt-get install nodejs npm)');
    if (tool.code !== 0) {
      const where = dir ? ` for ${dir} (its lockfile asks for ${manager?.name})` : '';
      const hint = /signature/i.test(tool.output)
        ? 'your registry serves no signatures corepack can check: pin the version with its hash in package.json ("packageManager": "pnpm@9.15.9+sha512.<hex>")'
        : 'corepack ships with Node.js 20: reinstall Node.js, or set apps.<name>.install to a command that works';
      return fail(name, `\`${argv.join(' ')}\` fails${where}: ${oneLine(tool.output)}`, hint);
    }
    found.push(`${manager?.name ?? 'corepack'} ${oneLine(tool.output, 1)}${dir ? ` (${dir})` : ''}`);
  }
  return pass(name, found.join(', '));
}

/**
 * What git said went wrong: its `fatal:` and `error:` lines, which come first; the advice it adds
 * after them ("Please make sure you have the correct access rights") is the same for every cause.
 */
function gitProblem(output: string): string {
  const problems = [
    ...new Set(
      output
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => /^(fatal|error):/.test(line)),
    ),
  ];
  return problems.length > 0 ? problems.join(' | ') : oneLine(output);
}
