import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandFailedError, DuetError, type StepName } from '../errors.js';
import { lastLines, type OutputSink } from '../util/run.js';
import { isFullObjectId, validateRefName } from './git-ref.js';

/** A ref pinned to the commit it named when it was resolved. */
export interface ResolvedRef {
  /** The commit (for an annotated tag: the tagged commit, not the tag object). */
  sha: string;
  /** The full ref name that matched (`refs/tags/v2`), or the sha itself when a sha was asked for. */
  ref: string;
}

export interface CheckoutOptions {
  /** Where git's output goes (a deploy log), each command preceded by a `$ git ...` line. */
  output?: OutputSink;
  /** Per git command; a stuck network must not hold the deploy lock forever. Default 10 minutes. */
  timeoutMs?: number;
}

const LS_REMOTE_TIMEOUT_MS = 2 * 60_000;
const FETCH_TIMEOUT_MS = 10 * 60_000;
const TAIL_LINES = 20;

/**
 * Resolve `ref` (branch, tag, full ref name or full sha) in the repository at `cloneUrl` to a
 * commit, without a local clone: `git ls-remote`. Order: the exact name when it starts with
 * `refs/`, then `refs/heads/<ref>`, then `refs/tags/<ref>`.
 */
export async function resolveRef(cloneUrl: string, ref: string): Promise<ResolvedRef> {
  validateRefName(ref);
  if (isFullObjectId(ref)) {
    const sha = ref.toLowerCase();
    return { sha, ref: sha };
  }
  // ls-remote matches patterns against the tail of each name; an annotated tag's commit is listed
  // as "<name>^{}" and only when a pattern matches that spelling too.
  const listing = await git(['ls-remote', '--', CLONE_REMOTE, ref, `${ref}^{}`], {
    step: 'resolve',
    cloneUrl,
    timeoutMs: LS_REMOTE_TIMEOUT_MS,
    hint: `check clone_url (${redact(cloneUrl)}) and that this host can reach it (network, ssh key, token)`,
  });
  const refs = parseLsRemote(listing);
  const candidates = [...(ref.startsWith('refs/') ? [ref] : []), `refs/heads/${ref}`, `refs/tags/${ref}`];
  for (const name of candidates) {
    const sha = refs.get(`${name}^{}`) ?? refs.get(name);
    if (sha !== undefined) return { sha, ref: name };
  }
  throw new DuetError(`ref "${ref}" does not exist in ${redact(cloneUrl)}`, {
    step: 'resolve',
    hint: `name a branch or tag that has been pushed there (git ls-remote ${redact(cloneUrl)}), or a full commit sha`,
  });
}

/** `git ls-remote` output: "<sha>\t<name>" lines -> name => sha. */
function parseLsRemote(text: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)$/.exec(line.trim());
    if (match) refs.set(match[2]!, match[1]!);
  }
  return refs;
}

/**
 * Bring `target.sha` into the repository in `dir` (made with `git init` when it has none), from
 * `cloneUrl`, shallowly, unless it is already there. It touches only `.git`, so it may run while an
 * instance still serves from `dir`. Fetched through CLONE_REMOTE, defined for the one command, never
 * a remote stored in the checkout: what is fetched always comes from the configured clone_url.
 * Lock files a crashed run left in `.git` are removed.
 */
export async function fetchCommit(dir: string, cloneUrl: string, target: ResolvedRef, options: CheckoutOptions = {}): Promise<void> {
  const sha = fullSha(target);
  const byName = !isFullObjectId(target.ref) ? validateRefName(target.ref) : undefined;
  const shown = redact(cloneUrl);
  await mkdir(dir, { recursive: true });
  if (hasOwnRepository(dir)) {
    await removeStaleLocks(join(dir, '.git'));
    if (await hasCommit(dir, sha)) return;
  } else {
    // A new repository has no commit to look for.
    await runIn(dir, options, ['-c', 'init.defaultBranch=main', 'init', '--quiet']);
  }

  const fetchTimeout = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  const fetchHint = `check that ${shown} is reachable from this host and still has ${target.ref}`;
  try {
    await runIn(dir, options, ['fetch', '--depth', '1', '--no-tags', CLONE_REMOTE, sha], fetchTimeout, fetchHint, cloneUrl);
  } catch (error) {
    // Servers speaking only protocol v0 refuse a sha they did not advertise (e.g. the commit of
    // an annotated tag): fetch the ref by name and check it still names the same commit.
    if (byName === undefined) throw error;
    options.output?.write(`duet: fetching ${sha} by id failed; fetching ${byName} instead\n`);
    await runIn(dir, options, ['fetch', '--depth', '1', '--no-tags', CLONE_REMOTE, byName], fetchTimeout, fetchHint, cloneUrl);
    if (!(await hasCommit(dir, sha))) {
      throw new DuetError(`${byName} in ${shown} no longer points at ${sha}`, {
        step: 'update',
        hint: 'the ref moved after it was resolved; deploy again to get its new commit',
      });
    }
  }
}

/**
 * Check out a fetched commit, detached, over whatever the tracked files hold. Untracked files are
 * cleanCheckout's. The instance must not be running.
 */
export async function checkOutCommit(dir: string, target: ResolvedRef, options: CheckoutOptions = {}): Promise<void> {
  await runIn(dir, options, ['checkout', '--quiet', '--force', '--detach', fullSha(target)]);
}

/** Whether `dir` has a repository of its own (a checkout duet made before), not just a parent's. */
export function hasOwnRepository(dir: string): boolean {
  return existsSync(join(dir, '.git'));
}

/**
 * Remove every untracked or ignored file except node_modules (the install step decides about
 * that one). Before a checkout or after it, the tree ends the same: a forced checkout deletes the
 * files the old commit tracked and the new one does not, and creates no untracked ones; so the
 * update cleans while the next commit is fetched (the fetch writes only .git). The instance must
 * not be running, and `dir` must have its own repository (hasOwnRepository): elsewhere git would
 * clean the repository around it, so that is refused.
 */
export async function cleanCheckout(dir: string, options: CheckoutOptions = {}): Promise<void> {
  if (!hasOwnRepository(dir)) {
    throw new DuetError(`${dir} has no repository of its own to clean`, { step: 'update', hint: 'deploy again: the checkout is made anew' });
  }
  await runIn(dir, options, ['clean', '-ffdx', '-e', 'node_modules']);
}

function fullSha(target: ResolvedRef): string {
  if (!isFullObjectId(target.sha)) {
    throw new DuetError(`cannot check out "${target.sha}": not a full commit sha`, { step: 'update' });
  }
  return target.sha.toLowerCase();
}

/** A git command of the update step in `dir`, echoed to the deploy log. */
function runIn(
  dir: string,
  options: CheckoutOptions,
  args: string[],
  timeoutMs = options.timeoutMs ?? 60_000,
  hint = `in ${dir}`,
  cloneUrl?: string,
): Promise<string> {
  return git(args, { cwd: dir, step: 'update', output: options.output, timeoutMs, echo: true, hint, cloneUrl });
}

/** HEAD's commit in `dir`, or undefined when `dir` is no git checkout or has no commit yet. */
export async function checkedOutRevision(dir: string): Promise<string | undefined> {
  // Without its own .git, git would answer for whatever repository encloses `dir`.
  if (!existsSync(join(dir, '.git'))) return undefined;
  const result = await query(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { cwd: dir });
  const sha = result.stdout.trim();
  return result.exitCode === 0 && isFullObjectId(sha) ? sha : undefined;
}

/** Whether `dir`'s repository has the commit (git prints nothing either way). */
export async function hasCommit(dir: string, sha: string): Promise<boolean> {
  return (await query(['cat-file', '-e', `${sha}^{commit}`], { cwd: dir })).exitCode === 0;
}

/** The values of a commit message's trailer `key` (`Duet-Breaking: true`), in order; none when git cannot tell. */
export async function commitTrailer(dir: string, sha: string, key: string): Promise<string[]> {
  const result = await query(['log', '-1', `--format=%(trailers:key=${key},valueonly,unfold)`, sha, '--'], { cwd: dir });
  if (result.exitCode !== 0) return [];
  return result.stdout.split('\n').flatMap((line) => (line.trim() ? [line.trim()] : []));
}

async function removeStaleLocks(gitDir: string): Promise<void> {
  for (const name of ['index.lock', 'HEAD.lock', 'config.lock', 'shallow.lock']) {
    await rm(join(gitDir, name), { force: true });
  }
}

// --- running git ---------------------------------------------------------------------------

// simple-git strips GIT_DIR & co. only from an inherited env and rejects them in ours (needed for GIT_TERMINAL_PROMPT).
const GUARDED_ENV = /^(GIT_.*|EDITOR|VISUAL|PAGER|PREFIX|SSH_ASKPASS)$/i;

interface GitResult {
  /** undefined when git was killed (timeout) or did not run. */
  exitCode: number | undefined;
  stdout: string;
  /** stdout and stderr interleaved, or why git did not run. */
  all: string;
}

/** Start loading simple-git without waiting (see preloadRun). */
export function preloadGit(): void {
  import('simple-git').catch(() => {});
}

/**
 * The name under which git reaches clone_url. The URL travels in git's environment
 * (GIT_CONFIG_COUNT and friends), never on its command line: a token in an https URL would
 * otherwise be readable by every local user in /proc/<pid>/cmdline, and the environment is
 * readable only by duet's own user. It also means no remote is stored in the checkouts.
 */
export const CLONE_REMOTE = 'duet-clone-url';

/** The environment that defines CLONE_REMOTE for one git command. */
export function cloneRemoteEnv(cloneUrl: string): Record<string, string> {
  return { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: `remote.${CLONE_REMOTE}.url`, GIT_CONFIG_VALUE_0: cloneUrl };
}

interface QueryOptions {
  cwd?: string;
  output?: OutputSink;
  timeoutMs?: number;
  /** Defines CLONE_REMOTE for this command. */
  cloneUrl?: string;
}

/** Run git; never throws for a non-zero exit (for the read-only queries that is an answer). */
async function query(args: readonly string[], options: QueryOptions = {}): Promise<GitResult> {
  const { cwd = process.cwd(), output, timeoutMs, cloneUrl } = options;
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !GUARDED_ENV.test(name)));
  const remote = cloneUrl === undefined ? {} : cloneRemoteEnv(cloneUrl);
  const chunks: Buffer[] = [];
  let exitCode: number | undefined;
  let failure = '';
  let stdout = '';
  try {
    // Imported on first use: commands that never run git start sooner without it.
    const { simpleGit } = await import('simple-git');
    stdout = await simpleGit({
      baseDir: cwd,
      allowEnvironment: ['GIT_TERMINAL_PROMPT', ...Object.keys(remote)],
      // Only ever our one key (remote.<CLONE_REMOTE>.url), its value clone_url from duet.yml.
      ...(cloneUrl !== undefined && { unsafe: { allowUnsafeConfigEnvCount: true } }),
      // Output must not extend the limit: a trickling fetch would otherwise hold the lock forever.
      ...(timeoutMs !== undefined && { timeout: { block: timeoutMs, stdOut: false, stdErr: false } }),
      errors: (error, result) => {
        // exitCode is null after a kill (timeout); a rejected task never passes for success.
        exitCode = error instanceof Error && result.exitCode === 0 ? undefined : (result.exitCode ?? undefined);
        failure = error instanceof Error ? error.message : '';
        return undefined;
      },
    })
      .env({ ...env, ...remote, GIT_TERMINAL_PROMPT: '0' })
      .outputHandler((_command, out, err) => {
        // simple-git waits a fixed 50 ms after a git that printed nothing (its completion
        // plugin, not configurable; measured in bench/README.md, section 8). An empty chunk once
        // stdout has ended tells it there was output; it still waits for the process to close.
        out.once('end', () => out.emit('data', Buffer.alloc(0)));
        for (const stream of [out, err]) {
          stream.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            output?.write(redact(chunk.toString()));
          });
        }
      })
      .raw([...args]);
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
  }
  return { exitCode, stdout, all: Buffer.concat(chunks).toString() || failure };
}

interface GitOptions {
  step: StepName;
  cwd?: string;
  output?: OutputSink;
  timeoutMs?: number;
  hint?: string;
  /** Write "$ git ..." to `output` first, so a deploy log shows what ran. */
  echo?: boolean;
  /** Defines CLONE_REMOTE for this command. */
  cloneUrl?: string;
}

async function git(args: readonly string[], options: GitOptions): Promise<string> {
  const url = options.cloneUrl === undefined ? '' : ` (${CLONE_REMOTE} = ${redact(options.cloneUrl)})`;
  const shown = `${redact(['git', ...args].join(' '))}${url}`;
  if (options.echo) options.output?.write(`$ ${shown}\n`);
  const result = await query(args, options);
  if (result.exitCode !== 0) {
    throw new CommandFailedError({
      step: options.step,
      command: shown,
      exitStatus: result.exitCode,
      outputTail: lastLines(redact(result.all), TAIL_LINES),
      hint: options.hint,
    });
  }
  return result.stdout;
}

/** Hide credentials in URLs (https://TOKEN@host, scheme://user:password@host) in anything shown. */
export function redact(text: string): string {
  return text.replace(/\b(https?:\/\/)[^\s/@]+@/gi, '$1***@').replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+):[^\s/@]+@/gi, '$1:***@');
}
