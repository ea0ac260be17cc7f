import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';

/**
 * Secrets never live in duet.yml (it is readable by more people than it should be, and ends up in
 * backups and repositories). Each comes from the environment, `DUET_<NAME>`, or from a file named
 * by `DUET_<NAME>_FILE` -- the form systemd credentials (LoadCredential=) and Docker secrets use.
 */
export interface Secrets {
  /** Verifies X-Hub-Signature-256; `duet serve` refuses to start without it. */
  webhookSecret: string | undefined;
  /** Bearer token of the manual API and the dashboard. */
  apiToken: string | undefined;
  /** Writes commit statuses ("Commit statuses: write"). */
  githubToken: string | undefined;
}

export async function readSecrets(env: NodeJS.ProcessEnv = process.env): Promise<Secrets> {
  return {
    webhookSecret: await readSecret('DUET_WEBHOOK_SECRET', env),
    apiToken: await readSecret('DUET_API_TOKEN', env),
    githubToken: await readSecret('DUET_GITHUB_TOKEN', env),
  };
}

async function readSecret(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct && file) throw new ConfigError(`both ${name} and ${name}_FILE are set`, `keep one of them`);
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
    // Files written with `echo` end in a newline that is not part of the secret.
    const value = text.replace(/\r?\n$/, '');
    if (!value) throw new ConfigError(`${name}_FILE: ${file} is empty`);
    return value;
  }
  return direct || undefined;
}
