/**
 * The line protocol between duet and `duet step-runner`, the process systemd starts as app_user
 * for each connection to duet-step.socket (Accept=yes: the connection is the runner's stdin and
 * stdout). One request line from duet, then frames from the runner until the command has ended:
 *
 *   duet   -> runner  {"v":1,"cwd":"/var/lib/duet/app/blue","argv":["sh","-c","npm ci"],"env":{...}}
 *   runner -> duet    {"out":"added 120 packages\n"} ... {"exit":{"code":0,"signal":null}}
 *                     or {"error":"why the command did not run"}
 *
 * duet closing the connection (a timeout, Ctrl-C, duet killed) ends the command: the runner kills
 * its whole process group and exits, and systemd then stops whatever is left in the unit's cgroup.
 * JSON lines, not raw output: the command's output can hold anything, a frame cannot be forged.
 */

export const STEP_PROTOCOL_VERSION = 1;

export interface StepRequest {
  v: typeof STEP_PROTOCOL_VERSION;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
  /** duet hanging up stops the group with SIGTERM, and SIGKILL this much later (a release's grace); SIGKILL at once without it. */
  graceMs?: number;
}

export type StepFrame = { out: string } | { exit: { code: number | null; signal: string | null } } | { error: string };

/** The request is duet's own, but it crosses users: checked field by field all the same. */
export function parseStepRequest(line: string): StepRequest {
  const value = JSON.parse(line) as Partial<StepRequest> | null;
  if (typeof value !== 'object' || value === null) throw new Error('the request is not a JSON object');
  if (value.v !== STEP_PROTOCOL_VERSION)
    throw new Error(`protocol version ${String(value.v)}, this runner speaks ${STEP_PROTOCOL_VERSION}: run duet install again`);
  const { cwd, argv, env, graceMs } = value;
  if (typeof cwd !== 'string' || !cwd.startsWith('/')) throw new Error('cwd must be an absolute path');
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((arg) => typeof arg === 'string')) throw new Error('argv must be a non-empty array of strings');
  if (typeof env !== 'object' || env === null || !Object.values(env).every((v) => typeof v === 'string')) throw new Error('env must map names to strings');
  if (graceMs !== undefined && !(Number.isInteger(graceMs) && graceMs >= 0)) throw new Error('graceMs must be a whole number of milliseconds');
  return { v: STEP_PROTOCOL_VERSION, cwd, argv, env, ...(graceMs !== undefined ? { graceMs } : {}) };
}

/** Splits a byte stream into lines, keeping an unfinished last one for the next chunk. */
export class LineSplitter {
  private rest = '';

  constructor(private readonly maxLine: number) {}

  push(chunk: string): string[] {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop()!;
    if (this.rest.length > this.maxLine) throw new Error(`a line longer than ${this.maxLine} bytes`);
    return lines;
  }
}
