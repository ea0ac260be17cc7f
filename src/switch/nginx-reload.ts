import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { Config } from '../config/load.js';
import { DuetError } from '../errors.js';
import { pollUntil } from '../util/poll.js';
import { childrenOf, hasExited, procStat } from '../util/proc.js';
import { runArgv, type OutputSink } from '../util/run.js';
import { managedNginxPid } from './nginx-workers.js';

/**
 * Long enough for the slowest refusal nginx has: a port it cannot bind is tried five times,
 * 500 ms apart, before the master gives up on the reload (ngx_open_listening_sockets).
 */
const APPLY_TIMEOUT_MS = 10_000;

/**
 * Make nginx load its configuration again, and return once it has, or throw nginx's own reason
 * when it would not.
 *
 * duet's own nginx (nginx.managed) is sent SIGHUP directly. `nginx -s reload` would be a second
 * nginx process that parses the whole configuration only to send that same signal, on top of
 * forking duet's node process, between "healthy" and the switch (bench/README.md, section 2).
 * The master parses the configuration itself on SIGHUP and, when it cannot load it, logs why at
 * [emerg] and keeps running the old one; so the answer is read from the machine: new workers forked
 * (applied), or an [emerg] line from the master in its error log (refused).
 *
 * Any other nginx (a system one, reached through sudo) gets nginx.reload_cmd, which checks the
 * configuration before it signals and exits 1 with nginx's message when it is broken.
 */
export async function reloadNginx(config: Config, output?: OutputSink): Promise<void> {
  const errorLog = config.nginx.managed?.errorLog;
  const master = managedNginxPid(config);
  if (errorLog !== undefined && master !== undefined) {
    const before = childSet(master);
    const logOffset = fileSize(errorLog);
    if (signal(master)) return awaitReload(master, before, errorLog, logOffset);
  }
  await runArgv(config.nginx.reloadCmd, { step: 'nginx reload', output });
}

/** False when the master cannot be signalled by this user (it was started by another one). */
function signal(master: number): boolean {
  try {
    process.kill(master, 'SIGHUP');
    return true;
  } catch {
    return false;
  }
}

async function awaitReload(master: number, before: Set<string>, errorLog: string, logOffset: number): Promise<void> {
  const log = new LogTail(errorLog, logOffset);
  const emerg: string[] = [];
  const outcome = await pollUntil(
    async () => {
      // Workers are forked only once the new configuration is loaded; a refusal forks none.
      if ([...childSet(master)].some((child) => !before.has(child))) return { applied: true as const };
      // Only the master's [emerg] lines are kept: workers may log a lot meanwhile (upstream errors).
      emerg.push(...log.newLines().filter((line) => line.includes(`[emerg] ${master}#`)));
      const refusal = masterRefusal(emerg.join('\n'), master);
      if (refusal !== undefined) return { applied: false as const, refusal };
      const stat = procStat(master);
      if (stat === undefined || hasExited(stat)) return { applied: false as const, refusal: `the nginx master (pid ${master}) exited` };
      return undefined;
    },
    { timeoutMs: APPLY_TIMEOUT_MS, initialIntervalMs: 2, maxIntervalMs: 5 },
  );
  if (outcome?.applied) return;
  throw new DuetError(
    outcome?.refusal ?? `the nginx master (pid ${master}) neither started new workers nor logged an error within ${APPLY_TIMEOUT_MS / 1000} s of SIGHUP`,
    {
      step: 'nginx reload',
      hint: outcome
        ? `nginx keeps running its previous configuration; see ${errorLog}`
        : `see ${errorLog} and whether the master is stopped (ps -o stat= -p ${master})`,
    },
  );
}

/**
 * The master's [emerg] lines, once it has given up. "bind() to ... failed" is one failed try of
 * several, not the end: the master tries again and logs "still could not bind()" when it stops.
 */
export function masterRefusal(logged: string, master: number): string | undefined {
  const lines = logged.split('\n').filter((line) => line.includes(`[emerg] ${master}#`));
  const final = lines.some((line) => !/\bbind\(\) to \S+ failed/.test(line));
  return final ? lines.join('\n') : undefined;
}

/** The master's children as pid + start time, so a reused pid never passes for a new worker. */
function childSet(master: number): Set<string> {
  return new Set(childrenOf(master).map((pid) => `${pid}:${procStat(pid)?.startTime ?? ''}`));
}

function fileSize(path: string): number {
  return statSync(path, { throwIfNoEntry: false })?.size ?? 0;
}

/** The whole lines appended to a file since `offset`, a read at a time. */
class LogTail {
  constructor(
    private readonly path: string,
    private offset: number,
  ) {}

  newLines(): string[] {
    const lines: string[] = [];
    let fd: number | undefined;
    try {
      fd = openSync(this.path, 'r');
      const buffer = Buffer.alloc(64 * 1024);
      for (;;) {
        const read = readSync(fd, buffer, 0, buffer.length, this.offset);
        const end = buffer.subarray(0, read).lastIndexOf(0x0a);
        // A line still being written is left for the next read; so is one longer than the buffer,
        // which no nginx line is.
        if (end < 0) return lines;
        lines.push(...buffer.subarray(0, end).toString('utf8').split('\n'));
        this.offset += end + 1;
      }
    } catch {
      return lines;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}
