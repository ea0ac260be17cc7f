import { realpathSync } from 'node:fs';
import { appendFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { repoRoot } from '../support/git-repo.js';
import type { Container } from './container.js';

/**
 * duet put on the machine as the README's step 1 leaves it after `git clone ... /opt/duet &&
 * npm ci && npm run build`: the package files, the built CLI and the whole node_modules (dev
 * dependencies too: npm ci installs them). Copied from this checkout's build, since the suite
 * must test the duet under test, not the last published one. Then `npm install -g /opt/duet`,
 * inside, as the README says, puts `duet` on PATH.
 */
export const DUET_DIR = '/opt/duet';

export async function installRelease(machine: Container): Promise<void> {
  const from = repoRoot();
  const to = join(machine.root, DUET_DIR);
  await mkdir(to, { recursive: true });
  for (const entry of ['package.json', 'package-lock.json', 'README.md', 'nginx', 'systemd', 'scripts']) {
    await cp(join(from, entry), join(to, entry), { recursive: true });
  }
  await mkdir(join(to, 'dist'));
  await cp(join(from, 'dist', 'bin'), join(to, 'dist', 'bin'), { recursive: true });
  // cp -a keeps node_modules/.bin's relative links as links (node_modules may itself be a link).
  await execa('cp', ['-a', '--reflink=auto', realpathSync(join(from, 'node_modules')), join(to, 'node_modules')]);
  await machine.run(['npm', 'install', '--global', '--no-audit', '--no-fund', '--offline', DUET_DIR], { timeoutMs: 120_000 });
}

/**
 * A new release of duet in place, as the README's "Upgrading duet" leaves /opt/duet after `git
 * pull && npm ci && npm run build`: the machine has no clone and no registry, so the suite writes
 * the result of that instead. The new release is this checkout's build again, made different
 * from the running one in three visible ways: `dist/bin` is replaced by a fresh copy whose
 * duet.mjs ends with a marker comment, package.json's version carries the marker, and the
 * duet.service template gains a comment line with it, so `duet install` has a changed unit to
 * write and a daemon-reload to run, as after a real upgrade that changed a unit.
 */
export async function upgradeRelease(machine: Container, marker: string): Promise<void> {
  const from = repoRoot();
  const to = join(machine.root, DUET_DIR);
  const bin = join(to, 'dist', 'bin');
  // A build writes dist/ anew: the old files go, the new ones come.
  await rm(bin, { recursive: true, force: true });
  await cp(join(from, 'dist', 'bin'), bin, { recursive: true });
  await appendFile(join(bin, 'duet.mjs'), `\n// duet release ${marker}\n`);
  const packageJson = JSON.parse(await readFile(join(to, 'package.json'), 'utf8')) as { version: string };
  packageJson.version = `${packageJson.version.replace(/-.*$/, '')}-${marker}`;
  await writeFile(join(to, 'package.json'), `${JSON.stringify(packageJson, null, 2)}\n`);
  const template = join(to, 'systemd', 'duet.service.template');
  const lines = (await readFile(template, 'utf8')).split('\n');
  lines.splice(1, 0, `# duet release ${marker}`);
  await writeFile(template, lines.join('\n'));
}
