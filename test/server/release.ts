import { realpathSync } from 'node:fs';
import { cp, mkdir } from 'node:fs/promises';
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
