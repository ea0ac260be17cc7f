import { join } from 'node:path';
import type { InstallLayout } from './layout.js';
import type { SetupConfig } from './settings.js';

/** What the operator does after `duet install`: secrets, config, start, the GitHub webhook. */
export function nextSteps(setup: SetupConfig, layout: InstallLayout, configCreated: boolean): string[] {
  const { config } = setup;
  const creds = layout.credentialsDir;
  const repos = [...config.apps.values()].filter((app) => app.repo).map((app) => `${app.repo} (${app.name})`);
  const releases = [...config.apps.values()].some((app) => app.deploy_on.releases);
  const url = config.server.public_url
    ? `${config.server.public_url.replace(/\/+$/, '')}/webhook`
    : `<server.public_url>/webhook   (set server.public_url in ${layout.configFile}; duet serve listens on ${config.server.listen}: expose it through nginx or a tunnel)`;
  const first = [...config.apps.keys()][0]!;
  return [
    'Next steps:',
    `  1. Secrets: one value per file in ${creds}/ (root only; systemd hands them to duet serve):`,
    `       sudo sh -c 'umask 077; openssl rand -hex 32 > ${join(creds, 'webhook-secret')}'`,
    `       sudo sh -c 'umask 077; cat > ${join(creds, 'github-token')}'   # paste a token with "Commit statuses: write", then Ctrl-D`,
    `       sudo sh -c 'umask 077; openssl rand -hex 32 > ${join(creds, 'api-token')}'   # optional: manual API and dashboard`,
    '     then run `sudo duet install` again: duet.service loads the optional tokens only when their files exist.',
    `  2. ${configCreated ? 'Edit the starter config' : 'Check the config'} ${layout.configFile} (apps, server.public_url), then: sudo duet doctor`,
    '  3. Start: sudo systemctl start duet-bootup.service duet.service',
    '  4. On GitHub, in each repository: Settings -> Webhooks -> Add webhook',
    `       Payload URL:       ${url}`,
    '       Content type:      application/json',
    `       Secret:            the contents of ${join(creds, 'webhook-secret')}`,
    '       SSL verification:  Enable SSL verification',
    `       Which events:      Let me select individual events -> Pushes${releases ? ', Releases' : ''}`,
    '       Active:            checked',
    `     Repositories: ${repos.length ? repos.join(', ') : `none: set apps.<name>.repo in ${layout.configFile}`}`,
    `  5. First deploy: push to a branch in deploy_on.branches, or by hand: sudo -u ${setup.user} duet deploy ${first}`,
  ];
}
