import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { missingDevPackages } from '../../src/instance/dev-dependencies.js';
import { installEnv, packageManagerOf, pruneEnv } from '../../src/instance/package-manager.js';
import { tempDir } from '../support/tmp.js';

const lock = (packages: Record<string, object>) =>
  `${JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages: { '': { name: 'app' }, ...packages } })}\n`;

test('missingDevPackages: what npm prune --omit=dev removes, and no path a lockfile could smuggle out of node_modules', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'package-lock.json'),
    lock({
      'node_modules/ms': { version: '2.1.3' },
      'node_modules/typescript': { version: '5.6.3', dev: true },
      'node_modules/@types/node': { version: '22.0.0', dev: true },
      'node_modules/a/node_modules/b': { version: '1.0.0', dev: true },
      'node_modules/fsevents': { version: '2.3.3', devOptional: true },
      'node_modules/local': { link: true, dev: true },
      'node_modules/../../etc': { dev: true },
      'node_modules/.bin': { dev: true },
      '/etc/passwd': { dev: true },
    }),
  );
  // Nothing installed yet: every dev package the lockfile names is missing.
  assert.deepEqual(await missingDevPackages(dir), ['node_modules/typescript', 'node_modules/@types/node', 'node_modules/a/node_modules/b']);
  const yarn = await tempDir(t);
  await writeFile(join(yarn, 'yarn.lock'), '# yarn lockfile v1\n');
  assert.deepEqual(await missingDevPackages(yarn), [], "yarn.lock does not say: the prune is yarn's own");

  await mkdir(join(dir, 'node_modules', 'typescript'), { recursive: true });
  await writeFile(join(dir, 'node_modules', 'typescript', 'package.json'), '{}');
  await mkdir(join(dir, 'node_modules', '@types', 'node'), { recursive: true }); // half-removed: no package.json
  assert.deepEqual(await missingDevPackages(dir), ['node_modules/@types/node', 'node_modules/a/node_modules/b']);
});

test("installEnv: the devDependencies for the build, unless the operator chose; the prune's environment drops the setting", async (t) => {
  const npmDir = await tempDir(t);
  await writeFile(join(npmDir, 'package-lock.json'), lock({}));
  const production = { NODE_ENV: 'production' };
  assert.deepEqual(installEnv(production, npmDir, 'npm ci'), { env: { NODE_ENV: 'production', npm_config_include: 'dev' }, withDev: true });
  assert.deepEqual(installEnv(production, npmDir, 'npm ci --legacy-peer-deps'), { env: { NODE_ENV: 'production', npm_config_include: 'dev' }, withDev: true });
  assert.deepEqual(installEnv(production, npmDir, 'npm ci --omit=dev'), { env: production, withDev: false }, 'an install command that chose');
  assert.deepEqual(
    installEnv({ ...production, npm_config_omit: 'dev' }, npmDir, 'npm ci'),
    { env: { ...production, npm_config_omit: 'dev' }, withDev: false },
    'an env that chose',
  );
  assert.deepEqual(pruneEnv({ ...production, npm_config_include: 'dev' }, packageManagerOf(npmDir)), production);

  const pnpmDir = await tempDir(t);
  await writeFile(join(pnpmDir, 'pnpm-lock.yaml'), "lockfileVersion: '9.0'\n");
  assert.equal(packageManagerOf(pnpmDir).name, 'pnpm');
  assert.deepEqual(
    installEnv(production, pnpmDir, packageManagerOf(pnpmDir).install).env,
    { COREPACK_ENABLE_DOWNLOAD_PROMPT: '0', NODE_ENV: 'production' },
    'pnpm gets --prod=false in its command instead',
  );

  const berry = await tempDir(t);
  await writeFile(join(berry, 'yarn.lock'), '__metadata:\n  version: 8\n');
  await writeFile(join(berry, 'package.json'), JSON.stringify({ packageManager: 'yarn@4.5.0' }));
  assert.equal(packageManagerOf(berry).install, 'corepack yarn install --immutable');
  assert.equal(packageManagerOf(berry).prune, undefined, 'yarn 2+ cannot prune');
  await writeFile(join(berry, 'package.json'), JSON.stringify({ packageManager: 'yarn@1.22.22' }));
  assert.match(packageManagerOf(berry).install, /--production=false/);
});
