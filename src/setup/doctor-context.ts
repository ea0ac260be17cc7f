import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { readSecrets, type Secrets } from '../config/secrets.js';
import { lastLines } from '../util/run.js';
import { CREDENTIALS, underRoot, type InstallLayout } from './layout.js';
import type { SetupConfig } from './settings.js';
import { isRoot, lookupUser } from './system.js';

/** One line of `duet doctor`: what was checked, what was found, and how to fix it. */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** One line saying what to do; empty when the check passed (but for a warning). */
  fix: string;
  /** Passed, but something will go wrong later: said, without failing doctor. */
  warning?: boolean;
}

export interface DoctorContext {
  setup: SetupConfig;
  layout: InstallLayout;
  /** Where `duet install --root` put the units (and credentials); `/` normally. */
  root: string;
  /** The environment with the credential files filled in, as duet.service would see it. */
  env: NodeJS.ProcessEnv;
  secrets: Secrets | Error;
  /** When doctor runs as root: the service user, so git is asked with that user's keys. */
  runAs: { uid: number; gid: number; home: string } | undefined;
  /** Free space wanted per checkout when there is none yet to measure. */
  minCheckoutBytes: number;
}

export const pass = (name: string, detail: string): CheckResult => ({ name, ok: true, detail, fix: '' });
export const fail = (name: string, detail: string, fix: string): CheckResult => ({ name, ok: false, detail, fix });

/**
 * Secrets as `duet serve` gets them under systemd: what the environment has, else the files in
 * the credentials dir that LoadCredential= would hand over. So `sudo duet doctor` in a shell
 * checks the same secrets the service will read.
 */
function credentialEnv(layout: InstallLayout, root: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const credential of CREDENTIALS) {
    if (out[credential.env] || out[`${credential.env}_FILE`]) continue;
    const file = underRoot(root, join(layout.credentialsDir, credential.file));
    if (existsSync(file)) out[`${credential.env}_FILE`] = file;
  }
  return out;
}

export async function doctorContext(
  setup: SetupConfig,
  layout: InstallLayout,
  options: { root: string; env: NodeJS.ProcessEnv; minCheckoutBytes: number },
): Promise<DoctorContext> {
  const env = credentialEnv(layout, options.root, options.env);
  const secrets = await readSecrets(env).catch((error: Error) => error);
  let runAs: DoctorContext['runAs'];
  if (isRoot() && setup.user !== 'root') {
    const ids = await lookupUser(setup.user);
    if (ids) runAs = { ...ids, home: setup.config.stateDir };
  }
  return { setup, layout, root: options.root, env, secrets, runAs, minCheckoutBytes: options.minCheckoutBytes };
}

interface Captured {
  code: number;
  /** stdout and stderr interleaved. */
  output: string;
}

/** Run an argv and keep everything it says; never throws (a missing program is code 127). */
export async function capture(
  argv: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string } = {},
): Promise<Captured> {
  const [file, ...args] = argv;
  const result = await execa(file!, args, {
    all: true,
    reject: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? 30_000,
    env: options.env,
    extendEnv: options.env === undefined,
    uid: options.uid,
    gid: options.gid,
    cwd: options.cwd,
  });
  const code = result.exitCode ?? (result.failed ? 127 : 0);
  return { code, output: String(result.all ?? result.message ?? '') };
}

/** A command's last words on one line, for a check's detail. */
export function oneLine(text: string, lines = 2): string {
  return lastLines(text.trim(), lines)
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' | ');
}
