import { execa } from 'execa';
import type { AppRepo } from '../../test/support/git-repo.js';

/**
 * Many commits (and lightweight tags) on `main` of the app's bare repository in one `git
 * fast-import`: one git process instead of five or six per tagged commit, which matters on a busy
 * 2-core machine. The work tree is then reset to the new `main`, so test/support's `repo.tag()`
 * keeps working on top.
 */

export interface NewCommit {
  /** Files to write (path -> content); the rest of the tree is the parent's. */
  files: Record<string, string>;
  /** Make a lightweight tag of this name at the commit. */
  tag?: string;
  message?: string;
}

const env = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };

export async function appendCommits(repo: AppRepo, commits: NewCommit[]): Promise<string[]> {
  if (commits.length === 0) return [];
  const parent = await repo.revParse('main');
  const chunks: string[] = [];
  const data = (text: string): void => {
    chunks.push(`data ${Buffer.byteLength(text)}\n${text}\n`);
  };
  const stamp = Math.floor(Date.now() / 1000);
  commits.forEach((commit, index) => {
    const mark = index + 1;
    chunks.push(`commit refs/heads/main\nmark :${mark}\ncommitter bench <bench@duet.invalid> ${stamp + index} +0000\n`);
    data(commit.message ?? commit.tag ?? `commit ${mark}`);
    if (index === 0) chunks.push(`from ${parent}\n`);
    for (const [path, content] of Object.entries(commit.files)) {
      chunks.push(`M 100644 inline ${path}\n`);
      data(content);
    }
    chunks.push('\n');
    if (commit.tag) chunks.push(`reset refs/tags/${commit.tag}\nfrom :${mark}\n\n`);
  });
  await execa('git', ['fast-import', '--quiet'], { cwd: repo.bareDir, input: chunks.join(''), env, extendEnv: true });
  const list = await execa('git', ['rev-list', '--reverse', `${parent}..main`], { cwd: repo.bareDir, env, extendEnv: true });
  const shas = String(list.stdout).trim().split('\n');
  if (shas.length !== commits.length) throw new Error(`fast-import made ${shas.length} commits, not ${commits.length}`);
  await repo.git(['fetch', '--quiet', 'origin', 'main']);
  await repo.git(['reset', '--quiet', '--hard', 'FETCH_HEAD']);
  return shas;
}

/** One commit per name, each changing VERSION to the name, tagged with the name. */
export function versionTags(names: string[]): NewCommit[] {
  return names.map((name) => ({ tag: name, files: { VERSION: `${name}\n` } }));
}
