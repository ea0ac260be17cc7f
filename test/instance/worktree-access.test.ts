import assert from 'node:assert/strict';
import { chmod, chown, mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from '../support/test.js';
import { foreignRepository, openWorktreeToGroup } from '../../src/instance/worktree-access.js';
import { tempDir } from '../support/tmp.js';

const groupWritable = async (path: string): Promise<boolean> => ((await stat(path)).mode & 0o020) !== 0;

test('app_user: the worktree opens to the group, but not .git, and never through a symlink', async (t) => {
  const root = await tempDir(t, 'duet-worktree');
  const dir = join(root, 'blue');
  const outside = join(root, 'journal.ndjson');
  await mkdir(join(dir, 'src', 'deep'), { recursive: true });
  await mkdir(join(dir, '.git', 'hooks'), { recursive: true });
  await mkdir(join(dir, 'node_modules', 'pkg'), { recursive: true });
  for (const file of [join(dir, 'package.json'), join(dir, 'src', 'deep', 'a.js'), join(dir, '.git', 'config'), outside]) await writeFile(file, '{}\n');
  for (const path of [dir, join(dir, 'src'), join(dir, 'src', 'deep'), join(dir, '.git'), join(dir, 'node_modules')]) await chmod(path, 0o755);
  for (const path of [join(dir, 'package.json'), join(dir, 'src', 'deep', 'a.js'), join(dir, '.git', 'config'), outside]) await chmod(path, 0o644);
  // A link the app user could plant, to one of duet's files outside the checkout.
  await symlink(outside, join(dir, 'src', 'link-to-journal'));

  await writeFile(join(dir, 'node_modules', 'pkg', 'index.js'), '\n');
  await chmod(join(dir, 'node_modules', 'pkg'), 0o755);
  await chmod(join(dir, 'node_modules', 'pkg', 'index.js'), 0o644);

  const opened = await openWorktreeToGroup(dir);
  // A node_modules of duet's, closed to the group (installed before app_user), opens too, once.
  const open = [dir, join(dir, 'src'), join(dir, 'src', 'deep'), join(dir, 'package.json'), join(dir, 'src', 'deep', 'a.js')];
  const modules = [join(dir, 'node_modules'), join(dir, 'node_modules', 'pkg'), join(dir, 'node_modules', 'pkg', 'index.js')];
  assert.equal(opened, open.length + modules.length);
  for (const path of [...open, ...modules]) assert.ok(await groupWritable(path), path);
  for (const path of [join(dir, '.git'), join(dir, '.git', 'config')]) assert.ok(!(await groupWritable(path)), `${path} was opened`);

  // A node_modules open at the top (the app user's install made it) is not walked: its files are its own business.
  await chmod(join(dir, 'node_modules', 'pkg', 'index.js'), 0o644);
  assert.equal(await openWorktreeToGroup(dir), 0);
  assert.ok(!(await groupWritable(join(dir, 'node_modules', 'pkg', 'index.js'))), 'walked into an open node_modules');
  assert.ok(!(await groupWritable(outside)), 'the symlink was followed');
});

test("a .git that is not duet's own directory is foreign: a file, a symlink, another user's", async (t) => {
  const dir = await tempDir(t, 'duet-foreign');
  assert.equal(await foreignRepository(dir), undefined, 'no repository yet');
  await mkdir(join(dir, '.git'));
  assert.equal(await foreignRepository(dir), undefined, "duet's own");
  await t.test("another user's", { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, async () => {
    await chown(join(dir, '.git'), 65534, 65534);
    assert.equal(await foreignRepository(dir), 'a directory of uid 65534');
  });
  await rm(join(dir, '.git'), { recursive: true });
  await writeFile(join(dir, '.git'), 'gitdir: /elsewhere\n');
  assert.equal(await foreignRepository(dir), 'not a directory');
  await rm(join(dir, '.git'));
  await symlink('/tmp', join(dir, '.git'));
  assert.equal(await foreignRepository(dir), 'a symlink');
});
