import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { readFileIfExists } from '../util/atomic-file.js';
import { WANTS_DIR, underRoot } from './layout.js';

/** Facts about the machine (or the --root tree) that install and doctor decide on. */

interface Ids {
  uid: number;
  gid: number;
}

/**
 * A user's uid and gid, through NSS (`getent`), so LDAP or sssd users count too. Under --root
 * the tree's own etc/passwd is read instead: getent would describe the machine, not the tree.
 */
export async function lookupUser(name: string, root = '/'): Promise<Ids | undefined> {
  if (name === 'root') return { uid: 0, gid: 0 };
  if (root !== '/') {
    const passwd = (await readFileIfExists(join(root, 'etc', 'passwd'))) ?? '';
    const fields = passwd
      .split('\n')
      .find((line) => line.split(':')[0] === name)
      ?.split(':');
    return fields ? { uid: Number(fields[2]), gid: Number(fields[3]) } : undefined;
  }
  const result = await execa('getent', ['passwd', name], { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) return undefined;
  const fields = String(result.stdout).trim().split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

export async function lookupGroup(name: string): Promise<number | undefined> {
  if (name === 'root') return 0;
  const result = await execa('getent', ['group', name], { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) return undefined;
  return Number(String(result.stdout).split(':')[2]);
}

/** A user name for a uid, for messages ("owned by www-data"). */
export async function userName(uid: number): Promise<string> {
  const result = await execa('getent', ['passwd', String(uid)], { reject: false, stdin: 'ignore' });
  return result.exitCode === 0 ? String(result.stdout).split(':')[0]! : String(uid);
}

/** The system user and its group; home is the state dir, no login shell, no home created. */
export function useraddArgv(user: string, home: string): string[] {
  return ['useradd', '--system', '--user-group', '--home-dir', home, '--no-create-home', '--shell', '/usr/sbin/nologin', user];
}

/** app_user: a system user whose primary group is the service user's, so it reads duet's files. */
export function appUseraddArgv(appUser: string, group: string, home: string): string[] {
  return ['useradd', '--system', '--gid', group, '--home-dir', home, '--no-create-home', '--shell', '/usr/sbin/nologin', appUser];
}

/** The groups a user is in (`id -nG`), [] for a user that does not exist. */
export async function groupsOf(user: string): Promise<string[]> {
  const result = await execa('id', ['-nG', user], { reject: false, stdin: 'ignore' });
  return result.exitCode === 0 ? String(result.stdout).trim().split(/\s+/) : [];
}

/**
 * Whether `systemctl enable` has linked the unit into multi-user.target.wants (WantedBy=). Read
 * from the file system, like systemctl does offline, so it works without systemd as PID 1 and
 * inside a --root tree.
 */
export async function isEnabled(unit: string, root = '/'): Promise<boolean> {
  try {
    return (await lstat(underRoot(root, join(WANTS_DIR, unit)))).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Whether systemd runs the unit now (`systemctl is-active`). */
export async function isActive(unit: string): Promise<boolean> {
  return (await execa('systemctl', ['is-active', '--quiet', unit], { reject: false })).exitCode === 0;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
