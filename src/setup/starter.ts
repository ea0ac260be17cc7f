import { join } from 'node:path';
import { findProgram } from './layout.js';

/**
 * The duet.yml `duet install` writes when there is none: valid as it stands (so the rest of the
 * install can be derived from it), with one example app to edit. It is never overwritten.
 */
export function starterConfig(configDir: string): string {
  const nginx = findProgram('nginx', '/usr/sbin/nginx');
  return `# duet configuration, written by \`duet install\` as a starting point: edit the app below,
# then run \`duet doctor\`. Every key is described under "Configuration" in duet's README.
# Secrets never go in this file: they are files in ${join(configDir, 'credentials')}/.
state_dir: /var/lib/duet
user: duet            # the system user duet runs as
runner: systemd       # systemd (duet-app@<app>-<color>.service) | process (detached instances)
# The apps, their installs and builds run as this user, not as duet: they cannot read duet's
# secrets (README, "Security model"). Needs runner: systemd and polkitd (apt-get install polkitd).
# Remove the line to run them as duet.
app_user: duet-app
nginx:
  managed: false
  # duet writes duet-<app>.conf here on every switch; /etc/nginx/conf.d/duet.conf includes this
  # directory, which belongs to the duet user: switching never needs write access to /etc/nginx.
  conf_dir: ${join(configDir, 'nginx.d')}
  # Port mode reloads the system nginx through sudo; /etc/sudoers.d/duet allows exactly these two
  # commands. With switch: socket no reload is needed (and no sudoers drop-in is installed).
  test_cmd: [sudo, -n, ${nginx}, -t]
  reload_cmd: [sudo, -n, ${nginx}, -s, reload]
server:
  listen: 127.0.0.1:9100
  # public_url: https://deploy.example.com   # where GitHub reaches duet serve (see next steps)
apps:
  myapp:
    repo: your-org/your-app                  # GitHub owner/name: webhooks match on it
    clone_url: https://github.com/your-org/your-app.git
    listen: 80
    server_name: app.example.com
    switch: port                             # port | socket
    ports: { blue: 20201, green: 20202 }
    install: npm ci
    build: npm run build --if-present
    start: npm start
    env: { NODE_ENV: production }
    health: { path: /health, timeout_s: 60 }
    deploy_on: { branches: [main], tags: [], releases: false }
`;
}
