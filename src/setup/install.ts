import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import { runArgv } from '../util/run.js';
import { nginxMessage } from '../switch/nginx-conf.js';
import { checkCertificate } from '../switch/tls.js';
import { acmeOperations } from './acme.js';
import { inspect, run, type Operation } from './apply.js';
import { DEFAULT_CONFIG, duetCommand, findProgram, installLayout, underRoot, type InstallLayout } from './layout.js';
import { nextSteps } from './next-steps.js';
import { desiredState } from './plan.js';
import { parseSetupConfig, type SetupConfig } from './settings.js';
import { starterConfig } from './starter.js';
import { isRoot } from './system.js';

interface InstallOptions {
  /** The config as the machine sees it: --config, else /etc/duet/duet.yml (never ./duet.yml). */
  configFile?: string;
  root?: string;
  dryRun?: boolean;
  /** Where lines go as they happen. */
  log: (line: string) => void;
}

interface InstallResult {
  setup: SetupConfig;
  layout: InstallLayout;
  operations: Operation[];
  /** Operations that change something (or would, with --dry-run). */
  changes: number;
}

/**
 * Plan, print, apply. Everything is derived from duet.yml (the starter one when there is none),
 * compared with the disk and only what differs is done, so a second run changes nothing.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  const root = resolve(options.root ?? '/');
  const real = root === '/';
  if (real && !options.dryRun && !isRoot()) {
    throw new DuetError('duet install changes system files and must run as root', {
      step: 'install',
      hint: 'sudo duet install; or look first: duet install --dry-run; or install into a tree: duet install --root DIR',
    });
  }
  const layout = installLayout(resolve(options.configFile ?? DEFAULT_CONFIG));
  const starter = starterConfig(layout.configDir);
  const existing = await readFileIfExists(underRoot(root, layout.configFile));
  const readFrom = underRoot(root, layout.configFile);
  const setup = parseSetupConfig(existing ?? starter, existing === undefined ? `${readFrom} (starter)` : readFrom);

  checkOutsideHome(setup, layout, real, options.log);
  checkTlsFiles(setup, real, options.log);
  const desired = await desiredState(setup, layout, root, starter);
  if (desired.sudoers) await checkSudoers(desired.sudoers, real, options.log);
  const operations = await inspect(desired, { root, systemd: real && existsSync('/run/systemd/system') });
  // Last: certbot needs the rest (and nginx serving the app's plain HTTP port) in place.
  operations.push(...acmeOperations(setup.config, layout.configFile, root, options.log));

  options.log(`duet install: ${layout.configFile}${real ? '' : ` into ${root}`}${options.dryRun ? ' (dry run: nothing is changed)' : ''}`);
  const width = Math.min(48, Math.max(...operations.map((op) => op.target.length)));
  for (const op of operations) {
    options.log(`  ${op.verb.padEnd(7)} ${op.target.padEnd(width)}  ${op.detail}`.trimEnd());
    if (options.dryRun && op.diff) options.log(indent(op.diff));
  }
  const changes = operations.filter((op) => op.verb !== 'ok' && op.verb !== 'skip').length;
  if (!options.dryRun) await run(operations, options.log);
  const skipped = operations.filter((op) => op.verb === 'skip').length;
  options.log(
    changes === 0
      ? `nothing to change${skipped ? ` (${skipped} command(s) listed as not run)` : ''}`
      : `${changes} change(s) ${options.dryRun ? 'would be made' : 'made'}${skipped ? `, ${skipped} command(s) not run` : ''}`,
  );
  if (!options.dryRun) {
    options.log('');
    for (const line of nextSteps(setup, layout, existing === undefined)) options.log(line);
  }
  return { setup, layout, operations, changes };
}

/**
 * A broken file in /etc/sudoers.d breaks sudo for everyone, so the drop-in is checked with
 * visudo before it is written. Under --root, a machine without sudo only gets a note.
 */
async function checkSudoers(content: string, real: boolean, log: (line: string) => void): Promise<void> {
  const visudo = findProgram('visudo', '');
  if (!visudo) {
    if (!real) {
      log('note: visudo is not installed; the sudoers drop-in was not checked');
      return;
    }
    throw new DuetError('sudo is not installed, but the config reloads nginx (or manages app units) through sudo', {
      step: 'install',
      hint: 'apt-get install sudo; or use switch: socket (no reload, no sudo) or nginx.managed: true',
    });
  }
  const dir = await mkdtemp(join(tmpdir(), 'duet-sudoers-'));
  try {
    const file = join(dir, 'duet');
    await writeFile(file, content, { mode: 0o440 });
    await runArgv([visudo, '-c', '-q', '-f', file], { step: 'install' });
  } catch (error) {
    throw new DuetError(`the generated sudoers drop-in does not pass visudo -c:\n${nginxMessage(error)}`, {
      step: 'install',
      hint: 'check nginx.test_cmd and nginx.reload_cmd in duet.yml; nothing was written',
      cause: error,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The units run with ProtectHome=yes: /home, /root and /run/user are empty inside them. duet
 * itself (a clone under ~, node from nvm) or its files there would make the service fail at
 * its first start, so a real install refuses; under --root it is a warning (tests and CI
 * often run from a home directory).
 */
function checkOutsideHome(setup: SetupConfig, layout: InstallLayout, real: boolean, log: (line: string) => void): void {
  const { node, main } = duetCommand();
  const paths = { node, duet: main, config: layout.configFile, state_dir: setup.config.stateDir, 'nginx.conf_dir': setup.config.nginx.confDir };
  const hidden = Object.entries(paths).filter(([, path]) => /^\/(home|root|run\/user)(\/|$)/.test(path));
  if (hidden.length === 0) return;
  const list = hidden.map(([what, path]) => `${what} ${path}`).join(', ');
  if (!real) {
    log(`warning: ${list}: hidden from the units by ProtectHome=yes`);
    return;
  }
  throw new DuetError(`the systemd units run with ProtectHome=yes and could not reach ${list}`, {
    step: 'install',
    hint: 'install duet and node outside /home and /root (e.g. a clone in /opt/duet, node from Debian or NodeSource), and keep its paths there',
  });
}

/**
 * tls files: the operator's certificate and key are checked before anything is written (a bad
 * pair would fail the next switch anyway). Under --root they are the machine's paths: a note.
 */
function checkTlsFiles(setup: SetupConfig, real: boolean, log: (line: string) => void): void {
  for (const app of setup.config.apps.values()) {
    if (app.tls.mode !== 'files') continue;
    if (real) checkCertificate(app, app.certificate!);
    else log(`note: ${app.name}'s tls.cert and tls.key are not checked under --root (duet doctor checks them on the machine)`);
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `      ${line}`)
    .join('\n');
}
