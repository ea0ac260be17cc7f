import { existsSync } from 'node:fs';
import { acmeCertName, type AppConfig, type Config } from '../config/load.js';
import { DuetError } from '../errors.js';
import { runArgv, type OutputSink } from '../util/run.js';
import { appConfPath, nginxMessage } from '../switch/nginx-conf.js';
import { certificateIssued, prepareServerDirs } from '../switch/tls.js';
import type { Operation } from './apply.js';
import { duetCommand } from './layout.js';

const CERTBOT_TIMEOUT_MS = 5 * 60_000;

/** One shell word: certbot keeps its deploy hook as a shell command line in the renewal conf. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * certbot runs it (as root) after every issuance and renewal of the app's certificate:
 * `duet reload-tls`, which checks the new files and makes nginx serve them.
 */
function deployHook(app: AppConfig, configFile: string): string {
  const { node, main } = duetCommand();
  return [node, main, '--config', configFile, 'reload-tls', app.name].map(shellWord).join(' ');
}

/**
 * `certbot certonly --webroot` for the app's names, into <config_dir>/live/duet-<app>/. The
 * challenge files go to the webroot duet's nginx serves on the app's plain HTTP port. Run again
 * when the certificate exists, it keeps it until it is due (certbot's own rule) and adds a name
 * the aliases gained (--expand). Renewal is certbot's systemd timer, which reuses these settings.
 */
export function certbotArgv(app: AppConfig, configFile: string): string[] {
  const { acme } = app.tls;
  const names = [app.server_name, ...app.aliases].flatMap((name) => ['-d', name]);
  return [
    ...acme.certbot,
    'certonly',
    '--webroot',
    '--webroot-path',
    app.paths.acmeWebroot,
    '--cert-name',
    acmeCertName(app.name),
    ...names,
    '--config-dir',
    acme.config_dir,
    '--server',
    acme.directory_url,
    ...(acme.email ? ['--email', acme.email] : ['--register-unsafely-without-email']),
    '--agree-tos',
    '--non-interactive',
    '--keep-until-expiring',
    '--expand',
    '--deploy-hook',
    deployHook(app, configFile),
  ];
}

/**
 * Obtain (or keep) the app's certificate. nginx must already serve the app's plain HTTP port
 * (the app was deployed once): the CA fetches the challenge from there.
 */
export async function obtainCertificate(
  app: AppConfig,
  configFile: string,
  options: { output?: OutputSink; env?: Record<string, string> } = {},
): Promise<void> {
  prepareServerDirs(app);
  try {
    await runArgv(certbotArgv(app, configFile), { step: 'certificate', output: options.output, env: options.env, timeoutMs: CERTBOT_TIMEOUT_MS });
  } catch (error) {
    throw new DuetError(`certbot could not obtain a certificate for ${[app.server_name, ...app.aliases].join(', ')}:\n${nginxMessage(error)}`, {
      step: 'certificate',
      hint: `the CA fetches http://${app.server_name}/.well-known/acme-challenge/… from this machine: the name must resolve here, port 80 reach nginx (listen: 80), and ${app.name} be deployed; certbot's log says more (/var/log/letsencrypt/letsencrypt.log, or its --logs-dir)`,
      cause: error,
    });
  }
}

/**
 * duet install's part: certbot for each acme app without its certificate. Before the app's first
 * deploy there is no server for the CA to fetch the challenge from: then a note, and the next
 * install (after the deploy) obtains it.
 */
export function acmeOperations(config: Config, configFile: string, root: string, log: (line: string) => void): Operation[] {
  const real = root === '/';
  const ops: Operation[] = [];
  for (const app of config.apps.values()) {
    if (app.tls.mode !== 'acme' || certificateIssued(app, root)) continue;
    const target = `certbot certonly --webroot -d ${[app.server_name, ...app.aliases].join(' -d ')}`;
    if (!real) {
      ops.push({ verb: 'skip', target, detail: `${app.name}'s certificate (--root: not run)` });
    } else if (!existsSync(appConfPath(app, config)) && !(app.switch === 'socket' && !config.nginx.managed)) {
      // (A socket-mode app's conf is written by this install itself, before certbot runs.)
      ops.push({
        verb: 'skip',
        target,
        detail: `${app.name} is not deployed yet: deploy it (it serves the challenge on port ${String(app.listen)}), then run duet install again`,
      });
    } else {
      ops.push({
        verb: 'run',
        target,
        detail: `${app.name}'s certificate; renewals: certbot.timer, then duet reload-tls ${app.name}`,
        run: () => obtainCertificate(app, configFile, { output: { write: (chunk: string) => log(chunk.trimEnd()) } }),
      });
    }
  }
  return ops;
}
