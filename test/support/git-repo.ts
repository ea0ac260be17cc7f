import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import { checkOutCommit, cleanCheckout, fetchCommit, type CheckoutOptions, type ResolvedRef } from '../../src/instance/checkout.js';
import { tempDir } from './tmp.js';

/**
 * A stand-in for the app's GitHub repository: a local bare repo seeded from
 * test/fixtures/sample-app, plus a work tree to commit, tag and push from. Everything lives in a
 * temp dir removed when the test ends.
 *
 *   const repo = await createAppRepo(t);
 *   const v1 = await repo.tag('v1');                       // the seed commit (VERSION v1)
 *   const v2 = await repo.tag('v2', { VERSION: 'v2\n' });  // commit on main, tag, push
 *   const v3 = await repo.tag('v3', { VERSION: 'v3\n', 'behaviour.json': '{"crashOnStart":true}' }, { annotated: true });
 *   // clone_url for duet.yml: repo.bareUrl
 *
 * Git runs with the host's global and system config switched off and a fixed identity, so a
 * developer's ~/.gitconfig (signing, hooks, default branch) cannot change what the tests see.
 */

/** Files to write (path relative to the repo root => content); null deletes the file. */
export type FileChanges = Record<string, string | null>;

export interface AppRepoOptions {
  /** Applied on top of the fixture before the seed commit. */
  files?: FileChanges;
}

export interface AppRepo {
  /** file:// URL of the bare repository: what duet.yml's clone_url would hold. */
  bareUrl: string;
  /** Path of the bare repository. */
  bareDir: string;
  /** The work tree commits are made in, on branch main. */
  workDir: string;
  /** The seed commit (the fixture as is, plus options.files), pushed to main. */
  initialSha: string;
  /** Write `files`, commit everything on main and (unless push: false) push main. Returns the commit sha. */
  commit(files: FileChanges, message?: string, options?: { push?: boolean }): Promise<string>;
  /**
   * Tag a commit and push main and the tag. With `files`, commit them first (message = tag name);
   * without, tag the current head of main. Lightweight unless `annotated`. Returns the COMMIT sha.
   */
  tag(name: string, files?: FileChanges, options?: { annotated?: boolean }): Promise<string>;
  /** Push main and all tags (force, so moved tags and rewritten history are pushed too). */
  push(): Promise<void>;
  /** Run git in the work tree (or with cwd in another dir), with the same neutral config. */
  git(args: string[], cwd?: string): Promise<string>;
  /** `git rev-parse <rev>` in the bare repository, e.g. `v2^{commit}`. */
  revParse(rev: string): Promise<string>;
}

/** The environment for git in tests: no host config, a fixed identity. */
export function testGitEnv(home: string): Record<string, string> {
  return {
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: 'duet tests',
    GIT_AUTHOR_EMAIL: 'tests@duet.invalid',
    GIT_COMMITTER_NAME: 'duet tests',
    GIT_COMMITTER_EMAIL: 'tests@duet.invalid',
    GIT_TERMINAL_PROMPT: '0',
  };
}

/** The repository root (the dir holding package.json), found from this file in src or dist. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above test/support');
    dir = parent;
  }
  return dir;
}

export const sampleAppDir = (): string => join(repoRoot(), 'test', 'fixtures', 'sample-app');

/**
 * The files of an app under test/fixtures/registry-apps, to commit on top of the sample app: real
 * packages from the npm registry, pinned in a committed lockfile (npm's cache serves a repeat).
 */
export async function registryApp(name: string): Promise<FileChanges> {
  const dir = join(repoRoot(), 'test', 'fixtures', 'registry-apps', name);
  const files: FileChanges = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files[relative(dir, path)] = await readFile(path, 'utf8');
  }
  return files;
}

export async function createAppRepo(t: TestContext, options: AppRepoOptions = {}): Promise<AppRepo> {
  const root = await tempDir(t, 'duet-repo');
  const bareDir = join(root, 'app.git');
  const workDir = join(root, 'work');
  const env = testGitEnv(root);

  const git = async (args: string[], cwd = workDir): Promise<string> => {
    const result = await execa('git', args, { cwd, env, extendEnv: true, stdin: 'ignore', reject: false, all: true });
    if (result.failed) throw new Error(`git ${args.join(' ')} (in ${cwd}) failed:\n${result.all}`);
    return result.stdout.trim();
  };
  const writeFiles = async (files: FileChanges): Promise<void> => {
    for (const [path, content] of Object.entries(files)) {
      const target = resolve(workDir, path);
      if (!target.startsWith(`${workDir}/`)) throw new Error(`${path} is outside the work tree`);
      if (content === null) {
        await rm(target, { force: true });
      } else {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, content);
      }
    }
  };
  const push = async (): Promise<void> => {
    await git(['push', '--quiet', '--force', 'origin', 'main', '--tags']);
  };
  const commit = async (files: FileChanges, message = 'change', opts: { push?: boolean } = {}): Promise<string> => {
    await writeFiles(files);
    await git(['add', '--all']);
    await git(['commit', '--quiet', '--allow-empty', '--no-verify', '-m', message]);
    if (opts.push !== false) await push();
    return git(['rev-parse', 'HEAD']);
  };

  await git(['init', '--quiet', '--bare', '--initial-branch=main', bareDir], root);
  await mkdir(workDir);
  await git(['init', '--quiet', '--initial-branch=main']);
  await git(['config', 'commit.gpgsign', 'false']);
  await git(['config', 'tag.gpgsign', 'false']);
  await git(['remote', 'add', 'origin', bareDir]);
  await cp(sampleAppDir(), workDir, { recursive: true });
  const initialSha = await commit(options.files ?? {}, 'sample app');

  return {
    bareUrl: pathToFileURL(bareDir).href,
    bareDir,
    workDir,
    initialSha,
    commit,
    async tag(name, files, opts = {}) {
      if (files !== undefined) await commit(files, name, { push: false });
      const args = opts.annotated ? ['tag', '--annotate', '--message', `release ${name}`, name] : ['tag', name];
      await git(args);
      await push();
      return git(['rev-parse', `${name}^{commit}`]);
    },
    push,
    git,
    revParse: (rev) => git(['rev-parse', rev], bareDir),
  };
}

/** Make `dir` a clean checkout of `target`, by the steps duet's update runs (src/instance/update.ts). */
export async function checkOut(dir: string, cloneUrl: string, target: ResolvedRef, options: CheckoutOptions = {}): Promise<void> {
  await fetchCommit(dir, cloneUrl, target, options);
  await checkOutCommit(dir, target, options);
  await cleanCheckout(dir, options);
}
