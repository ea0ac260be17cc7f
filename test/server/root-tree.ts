import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * The Debian 12 root tree the server suite boots: Debian's own packages by debootstrap, built once
 * and kept in a cache dir outside the repository (DUET_SERVER_CACHE, default
 * /var/cache/duet-test-server), under a key that changes with anything that would change the tree.
 * Each test boots a throw-away overlay of it (container.ts), never the tree itself.
 */

export const SUITE = 'bookworm';
export const MIRROR = process.env.DUET_SERVER_MIRROR ?? 'http://deb.debian.org/debian';
/**
 * libpam-systemd (a Recommends of systemd, which debootstrap leaves out) is what a Debian server
 * has for user managers: without pam_systemd.so, user@<uid>.service, which lingering starts, fails
 * with "Trying to run as user instance, but $XDG_RUNTIME_DIR is not set." (runner: systemd).
 * dbus-user-session gives that manager its bus, /run/user/<uid>/bus, which `systemctl --user
 * --machine duet@` (duet doctor and duet install, as root) goes through: without it they fail with
 * "Failed to get properties: Transport endpoint is not connected".
 */
export const PACKAGES = [
  'systemd',
  'systemd-sysv',
  'libpam-systemd',
  'dbus',
  'dbus-user-session',
  'polkitd',
  'nginx-light',
  'git',
  'ca-certificates',
  'sudo',
  'curl',
] as const;
/** Bump when the way the tree is made changes without the package list changing. */
const TREE_VERSION = 1;

export const CACHE_DIR = process.env.DUET_SERVER_CACHE ?? '/var/cache/duet-test-server';

export function treeKey(): string {
  const recipe = JSON.stringify({ TREE_VERSION, SUITE, MIRROR, variant: 'minbase', packages: [...PACKAGES].sort() });
  return createHash('sha256').update(recipe).digest('hex').slice(0, 16);
}

export interface RootTree {
  dir: string;
  /** true: it was in the cache; false: debootstrap made it now. */
  cached: boolean;
  ms: number;
}

/**
 * The cached tree, made now if it is missing. A tree is only ever complete: debootstrap writes
 * into `<key>.partial`, which is renamed to `<key>` once everything succeeded, so an interrupted
 * build is redone from scratch by the next run.
 */
export async function rootTree(log: (line: string) => void = () => {}): Promise<RootTree> {
  const started = Date.now();
  const dir = join(CACHE_DIR, treeKey());
  if (existsSync(join(dir, 'etc', 'os-release')) && existsSync(join(dir, '.duet-tree-complete'))) {
    return { dir, cached: true, ms: Date.now() - started };
  }
  await mkdir(CACHE_DIR, { recursive: true });
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  log(`debootstrap ${SUITE} into ${partial} (a few minutes; cached afterwards)`);
  await execa('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, partial, MIRROR], {
    stdin: 'ignore',
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
  // Downloaded .debs are not needed to boot: keep the cache small.
  await execa('chroot', [partial, 'apt-get', 'clean'], { stdin: 'ignore' });
  await writeFile(join(partial, '.duet-tree-complete'), `${new Date().toISOString()} ${treeKey()}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return { dir, cached: false, ms: Date.now() - started };
}
