import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * What a build and a running version leave in a checkout, for the next update to clean away: a
 * build output in a nested dir, a stray file, a tracked file edited in place; plus dependencies,
 * which must stay.
 */
export async function leaveLeftovers(dir: string): Promise<void> {
  await mkdir(join(dir, 'dist', 'deep'), { recursive: true });
  await writeFile(join(dir, 'dist', 'deep', 'old.js'), 'stale\n');
  await writeFile(join(dir, '.env.local'), 'SECRET=1\n');
  await writeFile(join(dir, 'VERSION'), 'edited in place\n');
  await mkdir(join(dir, 'node_modules', 'dep'), { recursive: true });
  await writeFile(join(dir, 'node_modules', 'dep', 'index.js'), 'kept\n');
}

/** The checkout holds exactly its commit's tree, plus the dependencies leaveLeftovers put there. */
export async function assertLeftoversGone(dir: string): Promise<void> {
  assert.equal(existsSync(join(dir, 'dist')), false, 'untracked build output left behind');
  assert.equal(existsSync(join(dir, '.env.local')), false, 'a file the commit does not have left behind');
  assert.equal(await readFile(join(dir, 'node_modules', 'dep', 'index.js'), 'utf8'), 'kept\n');
  const status = await execa('git', ['status', '--porcelain', '--ignored', '--untracked-files=all'], { cwd: dir });
  assert.equal(status.stdout, '?? node_modules/dep/index.js');
}
