import type { AppConfig, Config } from '../config/load.js';
import { readSecrets } from '../config/secrets.js';
import { DuetError, UsageError } from '../errors.js';
import { CheckGate } from '../github/check-gate.js';
import { resolveRef } from '../instance/checkout.js';
import { defaultRef } from '../pipeline/deploy.js';
import { createGitHubClient } from '../util/github-client.js';

/**
 * `duet deploy` of an app with deploy_on.wait_for_checks waits for the commit's CI as duet serve
 * does, by polling (no webhook reaches a shell): the commit it returns is the one CI passed for,
 * deployed exactly. Red or too late: the deploy does not start.
 */
export async function waitForChecks(config: Config, app: AppConfig, ref: string | undefined, say: (line: string) => void): Promise<string> {
  const settings = app.deploy_on.wait_for_checks!;
  const token = (await readSecrets()).githubToken;
  if (!token) {
    throw new UsageError(
      `${app.name} waits for CI (deploy_on.wait_for_checks), which needs DUET_GITHUB_TOKEN to read the checks`,
      'set DUET_GITHUB_TOKEN, or pass --skip-checks to deploy without waiting for CI',
    );
  }
  const { sha } = await resolveRef(app.clone_url, ref ?? defaultRef(app));
  const gate = new CheckGate({ config, client: createGitHubClient({ apiUrl: config.github.api_url, token, retries: 0 }) });
  let told = '';
  const progress = (summary: string): void => {
    if (summary !== told) say(`${app.name}: ${sha.slice(0, 7)}: ${(told = summary)}`);
  };
  const signal = new AbortController().signal;
  const verdict = await gate.wait(app, sha, { deadline: Date.now() + settings.timeout_s * 1000, signal, progress });
  if (verdict!.state !== 'green') {
    throw new DuetError(verdict!.summary, { step: 'checks', hint: 'fix CI and push again, or pass --skip-checks to deploy anyway' });
  }
  say(`${app.name}: ${sha.slice(0, 7)}: ${verdict!.summary}`);
  return sha;
}
