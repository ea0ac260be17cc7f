import { isAbsolute, relative, resolve } from 'node:path';
import { findConfigFile } from '../config/load.js';
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
import { doctorContext, fail, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { checkNginxInclude, checkNginxInstalled, checkNginxTest, checkPorts } from './doctor-nginx.js';
import { installLayout } from './layout.js';
import { loadSetupConfig } from './settings.js';

export type { CheckResult } from './doctor-context.js';

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
    return { results: [fail('config', oneLine(message), `fix ${file}; see docs/configuration.md`)], exitCode: 2 };
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
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`repo ${app.name}`, () => checkCloneUrl(ctx, app)]),
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`github ${app.name}`, () => checkGitHubToken(ctx, app)]),
    ...apps.map((app): [string, () => Promise<CheckResult>] => [`package manager ${app.name}`, () => checkPackageManager(ctx, app)]),
    ['webhook secret', () => checkWebhookSecret(ctx)],
    ['disk', () => checkDisk(ctx)],
    ['units', () => checkUnits(ctx)],
    ...runnerChecks(ctx),
  ];
  const results = await Promise.all(
    checks.map(async ([name, check]) => {
      try {
        return await check();
      } catch (error) {
        // A check that crashes is a failed check with its reason, not a crashed doctor.
        return fail(name, oneLine(describeError(error)), 'this is unexpected; run the check by hand and report it');
      }
    }),
  );
  const all = [config, ...results];
  return { results: all, exitCode: all.every((r) => r.ok) ? 0 : 1 };
}

/** runner: systemd: the systemd that runs the app units can. */
function runnerChecks(ctx: DoctorContext): Array<[string, () => Promise<CheckResult>]> {
  const { runner, appUser } = ctx.setup;
  if (runner !== 'systemd') return [];
  if (appUser !== undefined) return [['app user', () => checkAppUser(ctx, appUser)]];
  return [['user systemd', () => checkUserSystemd(ctx)]];
}

export function formatResult(result: CheckResult): string {
  return result.ok ? `✓ ${result.name}: ${result.detail}` : `✗ ${result.name}: ${result.detail} — ${result.fix}`;
}

function oneLine(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' | ');
}
