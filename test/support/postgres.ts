import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

/**
 * A real PostgreSQL for one test: Debian's server binaries (scripts/install-deps --for-tests
 * installs `postgresql`; they are not on PATH), a cluster initialised in a temp dir, serving a
 * loopback port picked at run time with trust authentication for the superuser `duet`. initdb
 * and postgres refuse root: as root the cluster runs as the `postgres` user. Stopped when the
 * test ends, pass or fail, before its directory is removed.
 */
export interface Postgres {
  port: number;
  /** postgres://duet@127.0.0.1:<port>/<database> */
  url(database: string): string;
  /** Run SQL through psql; returns its unaligned, tuples-only output. */
  sql(database: string, statement: string): Promise<string>;
}

/** The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(join(root, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) throw new Error(`no PostgreSQL server under ${root}: run scripts/install-deps --for-tests (it installs postgresql)`);
  return join(root, majors[0]!, 'bin');
}

export async function startPostgres(t: TestContext): Promise<Postgres> {
  const bin = postgresBinDir();
  const asRoot = userInfo().uid === 0;
  // As root: the server's programs run as `postgres`, which must own what they write.
  const as = (argv: string[]) => {
    const [file, ...args] = asRoot ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
    return execa(file!, args, { reject: false, all: true, stdin: 'ignore' });
  };
  let data: string | undefined;
  // Registered before the temp dir: after hooks run in order, and the server must stop first.
  t.after(async () => {
    if (data && existsSync(join(data, 'postmaster.pid'))) await as([join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']);
  });
  const dir = await tempDir(t, 'duet-pg');
  const sockets = join(dir, 'sockets');
  await mkdir(sockets);
  if (asRoot) {
    const { uid, gid } = await idsOf('postgres');
    await chown(dir, uid, gid);
    await chown(sockets, uid, gid);
  }
  await chmod(dir, 0o755);
  data = join(dir, 'data');
  const run = async (argv: string[]): Promise<string> => {
    const result = await as(argv);
    if (result.failed) throw new Error(`${argv.join(' ')} failed:\n${result.all}\n${await readFile(join(dir, 'server.log'), 'utf8').catch(() => '')}`);
    return result.stdout;
  };
  await run([join(bin, 'initdb'), '-D', data, '-U', 'duet', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  // pg_ctl hands -o to the server through a shell: only a number and a temp path go in it.
  const options = `-p ${port} -k ${sockets} -c listen_addresses=127.0.0.1 -c fsync=off`;
  await run([join(bin, 'pg_ctl'), '-D', data, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  const psql = join(bin, 'psql');
  const sql = async (database: string, statement: string): Promise<string> => {
    const result = await execa(psql, ['-h', '127.0.0.1', '-p', String(port), '-U', 'duet', '-d', database, '-v', 'ON_ERROR_STOP=1', '-At', '-c', statement], {
      reject: false,
      all: true,
      stdin: 'ignore',
    });
    if (result.failed) throw new Error(`psql -c ${statement} failed:\n${result.all}`);
    return result.stdout;
  };
  return { port, url: (database) => `postgres://duet@127.0.0.1:${port}/${database}`, sql };
}

async function idsOf(user: string): Promise<{ uid: number; gid: number }> {
  const line = (await readFile('/etc/passwd', 'utf8')).split('\n').find((entry) => entry.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user}: the postgresql package creates it (scripts/install-deps --for-tests)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
