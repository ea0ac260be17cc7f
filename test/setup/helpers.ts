import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import { cliPath, type CliResult } from '../support/duet.js';

/** Shared by the install, doctor and verification tests. */

/** The real `duet` binary as a child process, like an operator runs it. */
export async function runDuet(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await execa('node', [cliPath(), ...args], { reject: false, stdin: 'ignore', env, extendEnv: true, timeout: 60_000 });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** `duet --config <machine path> install --root <root>`, failing the test with the output on a non-zero exit. */
export async function installInto(root: string, configFile = '/etc/duet/duet.yml', extra: string[] = []): Promise<CliResult> {
  const result = await runDuet(['--config', configFile, 'install', '--root', root, ...extra]);
  if (result.code !== 0) throw new Error(`duet install exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** Put a duet.yml at its machine path inside the tree, where install --root reads it. */
export async function writeConfig(root: string, text: string, configFile = '/etc/duet/duet.yml'): Promise<void> {
  await mkdir(dirname(join(root, configFile)), { recursive: true });
  await writeFile(join(root, configFile), text);
}

export interface Snapshot {
  mode: string;
  ino: number;
  mtimeMs: number;
  content: string | undefined;
}

/** Every path in a tree with its mode, inode, mtime and (for files) content. */
export async function snapshot(root: string): Promise<Map<string, Snapshot>> {
  const out = new Map<string, Snapshot>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const s = await lstat(path);
      const content = s.isFile() ? await readFile(path, 'utf8') : undefined;
      out.set(path.slice(root.length), { mode: (s.mode & 0o7777).toString(8), ino: s.ino, mtimeMs: s.mtimeMs, content });
      if (s.isDirectory()) await walk(path);
    }
  };
  await walk(root);
  return out;
}

/** The absolute path of a program on PATH (or in the sbin dirs), or undefined. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
}

/**
 * The binary, or a skip that says which Debian package brings it: a missing tool must show up in
 * the test report, not pass silently.
 */
export function requireBinary(t: TestContext, name: string, apt: string): string | undefined {
  const path = which(name);
  if (!path) {
    const message = `${name} is not installed (apt-get install ${apt}); this check did not run`;
    t.diagnostic(message);
    t.skip(message);
  }
  return path;
}

/** A minimal valid config; `extra` lines go under the top level, `app` lines under the app. */
export function configText(options: { top?: string[]; app?: string[]; name?: string } = {}): string {
  return [
    'state_dir: /var/lib/duet',
    ...(options.top ?? [
      'nginx:',
      '  conf_dir: /etc/duet/nginx.d',
      '  test_cmd: [sudo, -n, /usr/sbin/nginx, -t]',
      '  reload_cmd: [sudo, -n, /usr/sbin/nginx, -s, reload]',
    ]),
    'apps:',
    `  ${options.name ?? 'cafeteria'}:`,
    '    repo: inu-appcenter/cafeteria-server',
    '    clone_url: https://github.com/inu-appcenter/cafeteria-server.git',
    ...(options.app ?? []).map((line) => `    ${line}`),
    '',
  ].join('\n');
}

/** Run a checking tool (systemd-analyze, nginx, visudo) and keep its exit code and all output. */
export async function runTool(file: string, args: string[]): Promise<{ code: number; output: string; stdout: string }> {
  const result = await execa(file, args, { reject: false, all: true, stdin: 'ignore' });
  return { code: result.exitCode ?? -1, output: String(result.all ?? ''), stdout: String(result.stdout ?? '') };
}
