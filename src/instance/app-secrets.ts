import type { AppConfig } from '../config/load.js';
import { DuetError, type StepName } from '../errors.js';
import type { EnvFromFiles } from '../util/step-protocol.js';
import { askStepSocket } from '../util/step-socket.js';
import type { EnvFiles } from './app-env.js';

/**
 * The app's secrets where duet cannot read them: with app_user the env files are root's, and
 * systemd hands them to the runner of the app's own step socket (duet-step-<app>.socket, as the
 * app user). That runner checks the `secrets` names, gives the install, build and release their
 * values, and masks them in every output duet quotes: duet only ever gets names back.
 */
const runnerHoldsFiles = (app: AppConfig): boolean => app.stepSocket !== undefined && app.env_files.length > 0;

/** The `secrets` names the environment lacks (empty counts as missing). */
async function missingSecrets(app: AppConfig, files: EnvFiles, step: StepName): Promise<string[]> {
  if (app.secrets.length === 0) return [];
  if (files.values !== undefined || !runnerHoldsFiles(app)) {
    const env = { ...app.env, ...files.values };
    return app.secrets.filter((name) => !env[name]);
  }
  const frames = await askStepSocket(app.stepSocket!, { check: app.secrets, env: app.env }, step);
  const answer = frames.find((frame): frame is { missing: string[] } => 'missing' in frame);
  if (!answer)
    throw new DuetError(`the step runner at ${app.stepSocket} did not answer which secrets are missing`, { step, hint: 'run `sudo duet install` again' });
  return answer.missing;
}

/** Fails the deploy at `step` for a missing secret: the key is named, never a value. */
export async function requireSecrets(app: AppConfig, files: EnvFiles, step: StepName): Promise<void> {
  const missing = await missingSecrets(app, files, step);
  if (missing.length === 0) return;
  throw new DuetError(`${app.name} needs ${missing.join(', ')} (secrets in duet.yml), which its env_files do not set`, {
    step,
    hint: `add ${missing.map((name) => `${name}=...`).join(', ')} to one of ${app.env_files.join(', ') || '(no env_files: add one)'}`,
  });
}

/**
 * What a build-side command gets of the env files its runner holds: the release all of them (it
 * runs with the start's environment), the install, build and prune the build_env names; what duet
 * set itself (DUET_*, PORT, npm_config_*: any name not duet.yml's env as is) wins over a file.
 * undefined where duet reads the files itself (their values are in `env` already) or there are none.
 */
export function stepEnvFiles(app: AppConfig, step: 'install' | 'build' | 'prune' | 'release', env: Record<string, string>): EnvFromFiles | undefined {
  if (!runnerHoldsFiles(app)) return undefined;
  const keep = Object.keys(env).filter((name) => !Object.hasOwn(app.env, name) || env[name] !== app.env[name]);
  return { pick: step === 'release' ? '*' : app.build_env, keep };
}

/**
 * `text` (the app's journal lines duet quotes in an error) with the env files' values masked by the
 * runner that holds them. Where it cannot be asked, the text is not shown: an error must not carry
 * a value duet cannot recognise.
 */
export async function maskedByRunner(app: AppConfig, text: string, step: StepName): Promise<string> {
  if (!runnerHoldsFiles(app) || text === '') return text;
  try {
    const frames = await askStepSocket(app.stepSocket!, { mask: text, env: {} }, step, 5000);
    return frames.flatMap((frame) => ('out' in frame ? [frame.out] : [])).join('');
  } catch {
    return `(not shown: the app's output could not be masked of its secrets through ${app.stepSocket})`;
  }
}
