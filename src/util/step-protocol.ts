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
 *
 * An app with env_files has a step socket of its own, whose runner systemd hands the files as
 * credentials (LoadCredential=, read by PID 1 as root): the values live in the runner, never in
 * duet. The request says which of them the command gets (`envFiles`), the runner masks every value
 * in what it sends back, and two requests run no command: `check` answers the names the files (over
 * the request's env) leave unset or empty, `{"missing":[...]}`, and `mask` answers its text masked.
 */

export const STEP_PROTOCOL_VERSION = 1;

export interface StepRequest {
  v: typeof STEP_PROTOCOL_VERSION;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
  /** duet hanging up stops the group with SIGTERM, and SIGKILL this much later (a release's grace); SIGKILL at once without it. */
  graceMs?: number;
  envFiles?: EnvFromFiles;
  /** Run nothing: answer which of these names the env files over `env` leave unset or empty. */
  check?: string[];
  /** Run nothing: answer this text with the env files' values masked. */
  mask?: string;
}

/**
 * Which values of the runner's env files join the command's environment: all (`'*'`, the release)
 * or the named ones (build_env); over `env`, except for the names in `keep` (what duet sets).
 */
export interface EnvFromFiles {
  pick: string[] | '*';
  keep: string[];
}

export type StepFrame = { out: string } | { exit: { code: number | null; signal: string | null } } | { error: string } | { missing: string[] };

const names = (value: unknown): value is string[] => Array.isArray(value) && value.every((name) => typeof name === 'string');

function parseEnvFiles(value: unknown): EnvFromFiles | undefined {
  if (value === undefined) return undefined;
  const { pick, keep } = (value ?? {}) as Partial<EnvFromFiles>;
  if ((pick !== '*' && !names(pick)) || !names(keep)) throw new Error('envFiles must be {pick: names or "*", keep: names}');
  return { pick, keep };
}

/** The request is duet's own, but it crosses users: checked field by field all the same. */
export function parseStepRequest(line: string): StepRequest {
  const value = JSON.parse(line) as Partial<StepRequest> | null;
  if (typeof value !== 'object' || value === null) throw new Error('the request is not a JSON object');
  if (value.v !== STEP_PROTOCOL_VERSION)
    throw new Error(`protocol version ${String(value.v)}, this runner speaks ${STEP_PROTOCOL_VERSION}: run duet install again`);
  const { cwd, argv, env, graceMs, check, mask } = value;
  if (typeof cwd !== 'string' || !cwd.startsWith('/')) throw new Error('cwd must be an absolute path');
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((arg) => typeof arg === 'string')) throw new Error('argv must be a non-empty array of strings');
  if (typeof env !== 'object' || env === null || !Object.values(env).every((v) => typeof v === 'string')) throw new Error('env must map names to strings');
  if (graceMs !== undefined && !(Number.isInteger(graceMs) && graceMs >= 0)) throw new Error('graceMs must be a whole number of milliseconds');
  if (check !== undefined && !names(check)) throw new Error('check must be a list of names');
  if (mask !== undefined && typeof mask !== 'string') throw new Error('mask must be a string');
  const envFiles = parseEnvFiles(value.envFiles);
  return {
    v: STEP_PROTOCOL_VERSION,
    cwd,
    argv,
    env,
    ...(graceMs !== undefined ? { graceMs } : {}),
    ...(envFiles ? { envFiles } : {}),
    ...(check ? { check } : {}),
    ...(mask !== undefined ? { mask } : {}),
  };
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
