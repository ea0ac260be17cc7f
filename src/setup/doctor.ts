import { isAbsolute, relative, resolve } from 'node:path';
import { findConfigFile, type AppConfig } from '../config/load.js';
import { describeError } from '../errors.js';
import {
  checkCloneUrl,
  checkDisk,
  checkGitHubToken,
  checkPackageManager,
  checkStateDir,
  checkUnits,
  checkAppUser,
  checkUserSystemd,
  checkWebhookSecret,
} from './doctor-checks.js';
import { checkBuildMemory, checkBuildPriority } from './doctor-build.js';
import { doctorContext, fail, oneLine, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { checkEnvFiles } from './doctor-env.js';
import { checkNotify } from './doctor-notify.js';
import { checkServeConfig } from './doctor-serve.js';
import { checkNginxInclude, checkNginxInstalled, checkNginxTest, checkPorts } from './doctor-nginx.js';
import { checkCertbotMarker, checkTlsCertificate, checkTlsRenewal } from './doctor-tls.js';
import { installLayout } from './layout.js';
import { loadSetupConfig } from './settings.js';

interface DoctorOptions {
  configPath: string | undefined;
  /** Look for what `duet install --root DIR` wrote (units, enable links, credentials) under DIR. */
  root?: string;
  env?: NodeJS.ProcessEnv;
  minCheckoutBytes?: number;
}

interface DoctorReport {
  results: CheckResult[];
  /** 0 all passed, 1 a check failed, 2 the config is invalid (only its line is reported). */
  exitCode: 0 | 1 | 2;
}

/**
 * Every check on its own: one failing (or throwing) never hides the others, so a single run
 * lists everything that needs fixing. Checks run concurrently (git and GitHub wait on the
 * network) and are reported in a fixed order.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const file = findConfigFile(options.configPath);
  let setup;
  try {
    setup = await loadSetupConfig(file);
  } catch (error) {
    // The rest needs a config; the message already names the file, key and what was expected.
    const message = error instanceof Error ? error.message : describeError(error);
    return { results: [fail('config', oneLine(message, Infinity), `fix ${file}; see docs/configuration.md`)], exitCode: 2 };
  }
  const apps = [...setup.config.apps.values()];
  const config = pass('config', `${file} is valid (${apps.length} app${apps.length === 1 ? '' : 's'}: ${apps.map((a) => a.name).join(', ')})`);
  const root = resolve(options.root ?? '/');
  // A config read from inside the --root tree names itself by its machine path in the units.
  const inside = relative(root, file);
  const machineFile = root !== '/' && !inside.startsWith('..') && !isAbsolute(inside) ? `/${inside}` : file;
  const ctx = await doctorContext(setup, installLayout(machineFile), {
    root,
    env: options.env ?? process.env,
    minCheckoutBytes: options.minCheckoutBytes ?? 256 * 1024 ** 2,
  });
  const checks: Array<[string, () => Promise<CheckResult> | CheckResult]> = [
    ['nginx installed', () => checkNginxInstalled(ctx)],
    ['nginx config test', () => checkNginxTest(ctx)],
    ['nginx include', () => checkNginxInclude(ctx)],
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`ports ${app.name}`, () => checkPorts(ctx, app)]),
    ['state dir', () => checkStateDir(ctx)],
    ['duet serve', () => checkServeConfig(ctx)],
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`repo ${app.name}`, () => checkCloneUrl(ctx, app)]),
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`github ${app.name}`, () => checkGitHubToken(ctx, app)]),
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`package manager ${app.name}`, () => checkPackageManager(ctx, app)]),
    ...apps
      .filter((app) => app.env_files.length > 0)
      .map((app): [string, () => Promise<CheckResult>] => [`env files ${app.name}`, () => checkEnvFiles(ctx, app)]),
    ...setup.config.notify.map((target, index): [string, () => Promise<CheckResult>] => [`notify[${index}]`, () => checkNotify(ctx, target, index)]),
    ['webhook secret', () => checkWebhookSecret(ctx)],
    ['disk', () => checkDisk(ctx)],
    ['build priority', () => checkBuildPriority(ctx)],
    ['build memory', () => checkBuildMemory(ctx)],
    ['units', () => checkUnits(ctx)],
    ...runnerChecks(ctx),
    ...tlsChecks(ctx, apps),
  ];
  const results = await Promise.all(
    checks.map(async ([name, check]) => {
      try {
        return await check();
      } catch (error) {
        // A check that crashes is a failed check with its reason, not a crashed doctor.
        return fail(name, oneLine(describeError(error), Infinity), 'this is unexpected; run the check by hand and report it');
      }
    }),
  );
  const all = [config, ...results];
  return { results: all, exitCode: all.every((r) => r.ok) ? 0 : 1 };
}

/** Per app with tls: its certificate, with acme its renewal, and certbot --nginx's edits. */
function tlsChecks(ctx: DoctorContext, apps: AppConfig[]): Array<[string, () => Promise<CheckResult>]> {
  return apps
    .filter((app) => app.tls.mode !== 'off')
    .flatMap((app): Array<[string, () => Promise<CheckResult>]> => [
      [`tls ${app.name}`, () => checkTlsCertificate(ctx, app)],
      ...(app.tls.mode === 'acme' ? [[`tls renewal ${app.name}`, () => checkTlsRenewal(ctx, app)] as [string, () => Promise<CheckResult>]] : []),
      [`certbot edits ${app.name}`, () => checkCertbotMarker(ctx, app)],
    ]);
}

/** runner: systemd: the systemd that runs the app units can. */
function runnerChecks(ctx: DoctorContext): Array<[string, () => Promise<CheckResult>]> {
  const { runner, appUser } = ctx.setup;
  if (runner !== 'systemd') return [];
  if (appUser !== undefined) return [['app user', () => checkAppUser(ctx, appUser)]];
  return [['user systemd', () => checkUserSystemd(ctx)]];
}

export function formatResult(result: CheckResult): string {
  if (result.warning) return `! ${result.name}: ${result.detail} — ${result.fix}`;
  return result.ok ? `✓ ${result.name}: ${result.detail}` : `✗ ${result.name}: ${result.detail} — ${result.fix}`;
}
