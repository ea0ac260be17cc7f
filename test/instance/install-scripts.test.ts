import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { installScripts } from '../../src/instance/install-scripts.js';
import { tempDir } from '../support/tmp.js';

test('install scripts: the root lifecycle scripts and the dependencies package-lock.json flags', async (t) => {
  const dir = await tempDir(t, 'scripts');
  await writeFile(join(dir, 'package.json'), JSON.stringify({ scripts: { start: 'node .', postinstall: 'patch-package', prepare: ' ' } }));
  const lock = join(dir, 'package-lock.json');
  await writeFile(
    lock,
    JSON.stringify({
      packages: {
        '': {},
        'node_modules/esbuild': { hasInstallScript: true },
        'node_modules/a/node_modules/@prisma/client': { hasInstallScript: true },
        'node_modules/left-pad': {},
      },
    }),
  );
  assert.deepEqual(await installScripts(dir, lock), { root: ['postinstall'], dependencies: ['@prisma/client', 'esbuild'], known: true });

  await writeFile(lock, JSON.stringify({ packages: { 'node_modules/--ignore-scripts': { hasInstallScript: true } } }));
  assert.equal((await installScripts(dir, lock)).known, false, 'a name npm would not take never reaches its command line');
  assert.equal((await installScripts(dir, join(dir, 'yarn.lock'))).known, false, 'yarn.lock does not say');
});
