import { mkdir, mkdtemp, open, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import type { DuetSetup } from './duet.js';

/**
 * A small tmpfs of its own (the tests run as root), unmounted when the test ends, pass or fail:
 * a real full disk, without filling the machine's. Lazily (-l), so that a process of the test
 * still holding a file in it (a killed duet serve on its way out) cannot make the unmount fail.
 */
export async function mountTmpfs(t: TestContext, size: string, options: { at?: string; label?: string } = {}): Promise<string> {
  const dir = options.at ?? (await mkdtemp(join(tmpdir(), `${options.label ?? 'duet-tmpfs'}-`)));
  await mkdir(dir, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  t.after(async () => {
    await execa('umount', ['-l', dir]).catch(() => {});
    await rmdir(dir).catch(() => {});
  });
  return dir;
}

/**
 * Take every free block of the file system holding `dir` with one file, written until ENOSPC;
 * returns a function that frees it again. A file already there keeps the unused rest of its
 * last page, so its next write is a short one: what a full disk does to an append. `slackOf`:
 * files whose rest of a page is filled too, with newlines (blank lines, which readers of an
 * ndjson file skip), so that their next write fails outright.
 */
export async function fillDisk(dir: string, options: { slackOf?: string[] } = {}): Promise<() => Promise<void>> {
  const path = join(dir, 'filler');
  const handle = await open(path, 'w');
  // Short writes included: the loop ends at the first write that takes nothing.
  const chunk = Buffer.alloc(65536, 0x66);
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close();
  }
  for (const file of options.slackOf ?? []) {
    const slack = await open(file, 'a');
    try {
      for (;;) await slack.write(Buffer.alloc(4096, 0x0a));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    } finally {
      await slack.close();
    }
  }
  return () => rm(path, { force: true });
}

/**
 * `file` moved onto a small tmpfs of its own, bind-mounted back at its path: a full disk for that
 * one file while the rest of its directory has room (a deploy runs, only its record cannot be
 * written). Unmounted when the test ends, before the tmpfs under it.
 */
export async function fileOnTmpfs(t: TestContext, file: string, size: string): Promise<string> {
  const dir = await mountTmpfs(t, size, { label: 'duet-file' });
  const backing = join(dir, basename(file));
  await writeFile(backing, '', { flag: 'a' });
  await writeFile(file, '', { flag: 'a' });
  await execa('mount', ['--bind', backing, file]);
  t.after(() =>
    execa('umount', ['-l', file]).then(
      () => undefined,
      () => undefined,
    ),
  );
  return dir;
}

/** A small tmpfs the test mounts (as root) to make a directory full or read-only for a moment. */
export interface TestMount {
  readOnly(): Promise<void>;
  writable(): Promise<void>;
}

/**
 * Mount a tmpfs on `dir`, with what `dir` held copied onto it; unmounted when the test ends, pass
 * or fail, after duet's processes stopped (they may have files open there) and before the temp
 * dirs are removed. Only a directory nothing keeps open for writing can be made read-only: the
 * kernel refuses the remount (EBUSY) otherwise.
 */
export async function mountTmpfsOver(setup: DuetSetup, dir: string, size = '4m'): Promise<TestMount> {
  const saved = `${dir}.before-mount`;
  await mkdir(dir, { recursive: true });
  await execa('cp', ['-a', `${dir}/.`, saved]);
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  // Lazy: a process that escaped the test's cleanup must not leave the mount behind.
  setup.afterStop(async () => void (await execa('umount', ['-l', dir], { reject: false })));
  await execa('cp', ['-a', `${saved}/.`, dir]);
  await rm(saved, { recursive: true, force: true });
  return {
    readOnly: async () => void (await execa('mount', ['-o', 'remount,ro', dir])),
    writable: async () => void (await execa('mount', ['-o', 'remount,rw', dir])),
  };
}
