import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readServedConfig } from '../config/reload.js';
import { DuetError } from '../errors.js';
import { readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import { runArgv } from '../util/run.js';
import { nginxMessage } from '../switch/nginx-conf.js';
import { unifiedDiff } from './diff.js';
import { underRoot } from './layout.js';
import type { DesiredState, Entry, Owner, Role } from './plan.js';
import { appUseraddArgv, groupsOf, isActive, isEnabled, lookupGroup, lookupUser, useraddArgv } from './system.js';

const SERVE_UNIT = 'duet.service';

/**
 * Compare the desired state with the disk and turn the differences into operations, in the
 * order they must run. Nothing here writes; `run` does, operation by operation. With --root the
 * file operations happen inside the tree and the commands (useradd, chown, systemctl, nginx) are
 * listed as skipped: they would act on the machine, not on the tree.
 */
type Verb = 'create' | 'update' | 'chmod' | 'chown' | 'remove' | 'run' | 'ok' | 'skip';

export interface Operation {
  verb: Verb;
  /** A path, or the command line. */
  target: string;
  detail: string;
  diff?: string;
  role?: Role;
  run?: () => Promise<void>;
}

interface InspectOptions {
  root: string;
  /** Whether systemd runs this machine (/run/systemd/system exists); false under --root. */
  systemd: boolean;
}

const mode = (m: number): string => `0${(m & 0o7777).toString(8)}`;
const owner = (o: Owner): string => `${o.user}:${o.group}`;

export async function inspect(desired: DesiredState, options: InspectOptions): Promise<Operation[]> {
  const { root } = options;
  const real = root === '/';
  const ops: Operation[] = [];
  const groups = real ? await groupsOf(desired.user) : [];
  const command = (argv: string[], detail: string, run?: () => Promise<void>): Operation =>
    real
      ? { verb: 'run', target: argv.join(' '), detail, run: run ?? (() => runArgv(argv, { step: 'install' }).then(() => {})) }
      : { verb: 'skip', target: argv.join(' '), detail: `${detail} (--root: not run)` };

  const serviceUserExists = desired.user === 'root' || (await lookupUser(desired.user, root)) !== undefined;
  if (!serviceUserExists) ops.push(command(useraddArgv(desired.user, desired.home), `system user ${desired.user}`));
  const { appUser } = desired;
  if (appUser && !(await lookupUser(appUser.name, root))) {
    ops.push(command(appUseraddArgv(appUser.name, appUser.group, appUser.home), `system user ${appUser.name}, the apps run as (app_user)`));
  }
  const missingGroups = real && serviceUserExists ? desired.groups.filter((group) => !groups.includes(group)) : desired.groups;
  if (missingGroups.length) {
    ops.push(command(['usermod', '--append', '--groups', missingGroups.join(','), desired.user], `${desired.user} reads the app units' journal`));
  }
  const ids = new Ids();
  const restore: Array<() => Promise<void>> = [];
  for (const entry of desired.entries) {
    const entryOps = await inspectEntry(entry, root, ids, restore);
    ops.push(...entryOps);
    // Outside --root the owner is set as part of the write; inside, this is what would run.
    if (!real && entry.kind !== 'absent' && owner(entry.owner) !== 'root:root' && entryOps.some((op) => op.verb === 'create')) {
      ops.push(command(['chown', owner(entry.owner), entry.path], 'owner'));
    }
  }

  // Content, not modes: a chmod of a unit or the site needs no daemon-reload or nginx reload.
  const changed = (role: Role): boolean => ops.some((op) => op.role === role && ['create', 'update', 'remove'].includes(op.verb));
  if (real && !options.systemd) {
    ops.push({ verb: 'skip', target: 'systemctl daemon-reload; systemctl enable', detail: 'systemd is not running on this machine (no /run/systemd/system)' });
  } else {
    if (changed('unit') || (real && (await needsDaemonReload(desired)))) ops.push(command(['systemctl', 'daemon-reload'], 'systemd reads the changed units'));
    const disabled: string[] = [];
    for (const unit of desired.enable) if (!(await isEnabled(unit, root))) disabled.push(unit);
    if (disabled.length) ops.push(command(['systemctl', 'enable', ...disabled], 'started at boot'));
    // duet.service wants them, but may be running already: a deploy from the shell needs them now.
    if (desired.start.length && changed('unit')) ops.push(command(['systemctl', 'start', ...desired.start], "the apps' own step sockets listen"));
    if (changed('linger')) ops.push(command(['loginctl', 'enable-linger', desired.user], `${desired.user}'s systemd starts now and at every boot`));
    else if (changed('user-unit') && desired.user !== 'root') {
      // A running user manager keeps the unit it loaded until told to read it again.
      ops.push(command(['systemctl', '--user', '--machine', `${desired.user}@`, 'daemon-reload'], `${desired.user}'s systemd reads the changed app unit`));
    }
    // A running duet serve reads duet.yml only when asked (serve-reload.ts): one that loaded
    // another file than this install is for reads it again.
    if (real && (await readServedConfig(desired.serve))?.digest !== desired.serve.digest && (await isActive(SERVE_UNIT))) {
      ops.push(command(['systemctl', 'reload', SERVE_UNIT], 'duet serve runs an older duet.yml: it reads this one'));
    }
  }
  // Last: a stopped nginx fails the reload, and that must not keep the units from being installed.
  if (desired.nginx && changed('nginx')) {
    const { test, reload } = desired.nginx;
    ops.push(command(test, 'nginx accepts the new site', () => testOrRestore(test, restore)));
    ops.push(command(reload, 'nginx loads it', () => reloadNginx(reload)));
  }
  return ops;
}

/** Resolves owners once the user exists (useradd runs before any chown). */
class Ids {
  async of(o: Owner): Promise<{ uid: number; gid: number }> {
    const user = await lookupUser(o.user);
    const gid = await lookupGroup(o.group);
    if (!user || gid === undefined) throw new DuetError(`no user ${o.user} or group ${o.group}`, { step: 'install', hint: 'was useradd refused? see above' });
    return { uid: user.uid, gid };
  }

  async differs(path: string, o: Owner): Promise<boolean> {
    const user = await lookupUser(o.user);
    const gid = await lookupGroup(o.group);
    if (!user || gid === undefined) return true;
    const s = await stat(path);
    return s.uid !== user.uid || s.gid !== gid;
  }
}

async function inspectEntry(entry: Entry, root: string, ids: Ids, restore: Array<() => Promise<void>>): Promise<Operation[]> {
  const real = root === '/';
  const target = underRoot(root, entry.path);
  const base = { target: entry.path, role: entry.kind === 'dir' ? undefined : entry.role };
  if (entry.kind === 'absent') {
    if (!existsSync(target)) return [];
    return [{ ...base, verb: 'remove', detail: entry.note, run: () => unlink(target) }];
  }
  const current = await stat(target).catch(() => undefined);
  const setOwner = async (): Promise<void> => {
    if (!real) return;
    const { uid, gid } = await ids.of(entry.owner);
    await chown(target, uid, gid);
  };
  const describe = `${entry.kind === 'dir' ? 'dir ' : ''}${mode(entry.mode)} ${owner(entry.owner)}`;
  if (!current) {
    if (entry.kind === 'dir') {
      return [
        {
          ...base,
          verb: 'create',
          detail: describe,
          run: async () => {
            await mkdir(target, { recursive: true });
            await chmod(target, entry.mode);
            await setOwner();
          },
        },
      ];
    }
    const note = entry.note ? ` (${entry.note})` : '';
    if (entry.role === 'nginx') restore.push(() => unlink(target).catch(() => {}));
    return [
      {
        ...base,
        verb: 'create',
        detail: `${describe}${note}`,
        diff: unifiedDiff(undefined, entry.content, entry.path),
        run: async () => {
          await mkdir(dirname(target), { recursive: true });
          await writeFileAtomic(target, entry.content, entry.mode);
          await chmod(target, entry.mode);
          await setOwner();
        },
      },
    ];
  }

  const ops: Operation[] = [];
  if (entry.kind === 'file') {
    const text = (await readFileIfExists(target)) ?? '';
    if (entry.keepIf?.(text)) return [{ ...base, verb: 'ok', detail: 'left as it is: duet wrote it for port mode and rewrites it on the next switch' }];
    if (!entry.keep && text !== entry.content) {
      if (entry.role === 'nginx') restore.push(() => writeFileAtomic(target, text, current.mode & 0o7777));
      ops.push({
        ...base,
        verb: 'update',
        detail: describe,
        diff: unifiedDiff(text, entry.content, entry.path),
        run: async () => {
          await writeFileAtomic(target, entry.content, entry.mode);
          await chmod(target, entry.mode);
          await setOwner();
        },
      });
      return ops;
    }
  }
  const enforce = entry.kind === 'dir' ? entry.enforce : entry.enforce !== false;
  if (!enforce) return [{ ...base, verb: 'ok', detail: entry.kind === 'file' && entry.keep ? 'exists, kept' : 'exists' }];
  if ((current.mode & 0o7777) !== entry.mode) {
    ops.push({ ...base, verb: 'chmod', detail: `${mode(current.mode)} -> ${mode(entry.mode)}`, run: () => chmod(target, entry.mode) });
  }
  if (real && (await ids.differs(target, entry.owner))) {
    ops.push({ ...base, verb: 'chown', detail: `-> ${owner(entry.owner)}`, run: setOwner });
  }
  return ops.length ? ops : [{ ...base, verb: 'ok', detail: entry.kind === 'file' && entry.keep ? 'exists, kept' : describe }];
}

/** nginx -t after new files; on failure put the previous ones back so nginx's next start works. */
async function testOrRestore(test: string[], restore: Array<() => Promise<void>>): Promise<void> {
  try {
    await runArgv(test, { step: 'nginx test' });
  } catch (error) {
    for (const undo of restore) await undo();
    throw new DuetError(`nginx rejected the configuration with duet's site:\n${nginxMessage(error)}`, {
      step: 'install',
      hint: 'the previous nginx files were restored; fix the nginx config (or duet.yml) and run duet install again',
      cause: error,
    });
  }
}

async function reloadNginx(reload: string[]): Promise<void> {
  try {
    await runArgv(reload, { step: 'nginx reload' });
  } catch (error) {
    throw new DuetError(`nginx did not reload:\n${nginxMessage(error)}`, {
      step: 'install',
      hint: 'everything else is installed and the new site passed nginx -t; start nginx (systemctl start nginx), which reads it',
      cause: error,
    });
  }
}

/** A unit file changed on disk since systemd loaded it (also after an install that died midway). */
async function needsDaemonReload(desired: DesiredState): Promise<boolean> {
  const units = desired.entries.flatMap((e) => (e.kind === 'file' && e.role === 'unit' ? [e.path.split('/').pop()!] : []));
  const result = await runArgv(['systemctl', 'show', '--property=NeedDaemonReload', ...units], { step: 'install' }).catch(() => '');
  return /NeedDaemonReload=yes/.test(result);
}

export async function run(ops: Operation[], log: (line: string) => void): Promise<void> {
  for (const op of ops) {
    if (!op.run) continue;
    await op.run();
    if (op.verb === 'run') log(`  done    ${op.target}`);
  }
}
