import { mkdir, rm } from 'node:fs/promises';
import { execa } from 'execa';
import type { DuetSetup } from './duet.js';

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
export async function mountTmpfs(setup: DuetSetup, dir: string, size = '4m'): Promise<TestMount> {
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
