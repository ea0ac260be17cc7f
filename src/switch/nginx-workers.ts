import type { Config } from '../config/load.js';
import { readFileOrUndefinedSync } from '../util/atomic-file.js';
import { childrenOf, hasExited, procCmdline, procStat } from '../util/proc.js';

/**
 * When a reload is done for new connections. On `nginx -s reload` the master starts new workers,
 * sleeps 100 ms "to allow new processes to start" and only then tells the old ones to quit
 * (ngx_master_process_cycle): until then a new connection may still reach an old worker and the
 * old config. An old worker told to quit retitles itself "nginx: worker process is shutting down"
 * (ngx_setproctitle, read back from /proc/<pid>/cmdline) and closes its listening sockets in the
 * same step. So once every worker that accepted before the reload is gone or says so, only the
 * new config takes new connections. Connections it already has finish on the old color, which
 * is still running.
 */

/** The workers that were accepting connections just before a reload. */
export interface ReloadMark {
  master: number;
  /** Each with its start time, so a pid the kernel reused is never taken for an old worker. */
  workers: Array<{ pid: number; startTime: string }>;
}

/** Taken right before a reload; undefined when the master cannot be found (verify then waits by time). */
export function markBeforeReload(config: Config): ReloadMark | undefined {
  const master = nginxMasterPid(config.nginx.pidFile);
  if (master === undefined) return undefined;
  const workers = childrenOf(master)
    .map((pid) => ({ pid, proc: readProc(pid) }))
    .filter((w) => w.proc !== undefined && isAcceptingTitle(w.proc.title))
    .map((w) => ({ pid: w.pid, startTime: w.proc!.startTime }));
  return { master, workers };
}

/** The marked workers that still take new connections. */
export function stillAccepting(mark: ReloadMark): number[] {
  return mark.workers
    .filter(({ pid, startTime }) => {
      const proc = readProc(pid);
      return proc !== undefined && proc.ppid === mark.master && proc.startTime === startTime && isAcceptingTitle(proc.title);
    })
    .map((w) => w.pid);
}

/** duet's own nginx master (nginx.managed), when its pid file names a live master started with our prefix. */
export function managedNginxPid(config: Config): number | undefined {
  const paths = config.nginx.managed;
  if (!paths) return undefined;
  const pid = nginxMasterPid(paths.pidFile);
  // After a reboot the pid may belong to another nginx master (its title holds its command line).
  return pid !== undefined && procCmdline(pid)?.includes(paths.prefix) ? pid : undefined;
}

/** The master named by `pidFile`, if that process is alive and is an nginx master. */
function nginxMasterPid(pidFile: string): number | undefined {
  const text = readFileOrUndefinedSync(pidFile);
  if (text === undefined || !/^\d+\s*$/.test(text)) return undefined;
  const pid = Number(text);
  return readProc(pid)?.title.startsWith('nginx: master process') ? pid : undefined;
}

/**
 * A worker that takes new connections. A child forked a moment ago still carries the master's
 * title until it sets its own, and is counted too: it may be a worker of the old config.
 */
function isAcceptingTitle(title: string): boolean {
  if (title.startsWith('nginx: master process')) return true;
  return title.startsWith('nginx: worker process') && !title.includes('is shutting down');
}

interface ProcInfo {
  title: string;
  ppid: number;
  startTime: string;
}

function readProc(pid: number): ProcInfo | undefined {
  const stat = procStat(pid);
  const title = procCmdline(pid);
  if (stat === undefined || title === undefined || hasExited(stat)) return undefined;
  return { title, ppid: stat.ppid, startTime: stat.startTime };
}
