import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/load.js';
import type { ManagedNginxPaths } from '../config/paths.js';
import { DuetError } from '../errors.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import { lastLines, runArgv, type OutputSink } from '../util/run.js';
import { nginxMessage } from './nginx-conf.js';
import { reloadNginx } from './nginx-reload.js';
import { managedNginxPid } from './nginx-workers.js';
import { pollUntil } from '../util/poll.js';
import { childrenOf, hasExited, procStat } from '../util/proc.js';
import { renderTemplateFile } from './templates.js';

const TEMP_DIRS = ['client_body_temp', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp'];
const START_TIMEOUT_MS = 10_000;
const QUIT_TIMEOUT_MS = 10_000;

async function renderMainConf(paths: ManagedNginxPaths): Promise<string> {
  return renderTemplateFile('nginx.conf.template', {
    prefix: paths.prefix,
    pid_file: paths.pidFile,
    error_log: paths.errorLog,
    conf_dir: paths.confDir,
  });
}

/**
 * Make sure duet's own nginx runs with the current main config. Safe to call before every
 * command: it only writes when the content differs and only starts nginx when it is not running.
 */
export async function ensureManagedNginx(config: Config, options: { output?: OutputSink } = {}): Promise<void> {
  const paths = config.nginx.managed;
  if (!paths) return;
  await mkdir(paths.confDir, { recursive: true });
  // nginx creates these itself (and chowns them to its worker user); making them here keeps a
  // first `nginx -t` from failing on a fresh prefix.
  for (const dir of TEMP_DIRS) await mkdir(join(paths.prefix, dir), { recursive: true });

  const content = await renderMainConf(paths);
  const changed = (await readFileIfExists(paths.mainConf)) !== content;
  if (changed) await writeFileAtomic(paths.mainConf, content);

  if (managedNginxPid(config) !== undefined) {
    // A running nginx keeps its old main config until told; an upgraded duet may have changed it.
    // The reload checks the config first (see installConf) and leaves nginx as it was if broken.
    if (changed) await reloadNginx(config, options.output);
    return;
  }
  await startManagedNginx(config, paths, options.output);
}

async function startManagedNginx(config: Config, paths: ManagedNginxPaths, output?: OutputSink): Promise<void> {
  // A pid file left by a crash or a reboot -- or the empty one `nginx -t` creates -- must not be
  // mistaken for the new master's: remove it so that waiting for it means waiting for nginx.
  await unlink(paths.pidFile).catch(() => {});
  const hint = `see ${paths.errorLog}; another process may hold a port from ${paths.confDir}`;
  try {
    // The master daemonizes (`daemon on`): the command returns once nginx has bound its ports.
    await runArgv([config.nginx.binary, '-p', paths.prefix, '-c', paths.mainConf, '-e', paths.errorLog], {
      step: 'nginx start',
      output,
      timeoutMs: START_TIMEOUT_MS,
    });
  } catch (error) {
    throw new DuetError(`could not start the managed nginx:\n${nginxMessage(error)}`, { step: 'nginx start', hint, cause: error });
  }
  // The daemonized child writes the pid file after the parent has exited.
  const pid = await pollUntil(async () => managedNginxPid(config), { timeoutMs: START_TIMEOUT_MS });
  if (pid === undefined) {
    const log = lastLines((await readFileIfExists(paths.errorLog)) ?? '', 5);
    throw new DuetError(`the managed nginx did not write ${paths.pidFile} within ${START_TIMEOUT_MS / 1000} s\n${log}`, {
      step: 'nginx start',
      hint,
    });
  }
  output?.write(`nginx: started the managed nginx (pid ${pid})\n`);
}

/** Graceful stop (SIGQUIT: finish in-flight requests), then SIGKILL if it takes too long. */
export async function stopManagedNginx(config: Config): Promise<void> {
  const paths = config.nginx.managed;
  if (!paths) return;
  const pid = managedNginxPid(config);
  if (pid === undefined) return;
  // Collected first: once the master is gone its workers can no longer be found by parent pid.
  const workers = childrenOf(pid);
  signal(pid, 'SIGQUIT');
  const gone = await pollUntil(async () => (isAlive(pid) ? undefined : true), { timeoutMs: QUIT_TIMEOUT_MS });
  if (!gone) {
    // A killed master does not take its workers along, and they would keep the ports.
    for (const p of [pid, ...workers]) signal(p, 'SIGKILL');
  }
  await pollUntil(async () => ([pid, ...workers].some(isAlive) ? undefined : true), { timeoutMs: QUIT_TIMEOUT_MS });
  // nginx removes it on a clean exit, not after SIGKILL.
  await unlink(paths.pidFile).catch(() => {});
}

/** Alive and not a zombie (a reaped-late master is dead for our purposes). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  return stat === undefined || !hasExited(stat);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone: that is what we wanted.
  }
}
