import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readInstallStamp } from '../../src/instance/install-stamp.js';
import { registryApp } from '../support/git-repo.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';

/**
 * Apps as users write them, with real packages from the npm registry (pinned in committed
 * lockfiles under test/fixtures/registry-apps): the sample app's server plus a TypeScript build,
 * or a patch-package postinstall. Both run with NODE_ENV=production, as production guides say.
 */
const has = (setup: DuetSetup, color: 'blue' | 'green', path: string): boolean => existsSync(join(setup.app.paths.checkout[color], path));

async function timed(setup: DuetSetup, args: string[]): Promise<number> {
  const started = performance.now();
  await setup.succeed(args);
  return Math.round(performance.now() - started);
}

test(
  'a TypeScript build under NODE_ENV=production gets its devDependencies; the colors run pruned trees, and a skip or copy puts them back (npm registry)',
  { timeout: 360_000 },
  async (t) => {
    const setup = await setupDuet(t, {
      app: {
        install: 'npm ci',
        build: 'npm run build',
        // dist/built.js exists only when tsc ran; ms (a dependency) must survive the prune.
        start: "'exec node --require ./dist/built.js --require ms server.js'",
        env: '{ NODE_ENV: production }',
      },
      tags: {
        v1: { ...(await registryApp('typescript')), 'src/built.ts': "const by: string = 'tsc';\nconsole.log(`built by ${by}`);\n" },
        v2: { VERSION: 'v2\n' },
        v3: { VERSION: 'v3\n' },
      },
    });
    const cold = await timed(setup, ['deploy', '--ref', 'v1']);
    assert.match((await setup.get('/')).body, /cafeteria v1/);
    assert.ok(has(setup, 'blue', 'dist/built.js'), 'tsc ran');
    assert.ok(has(setup, 'blue', 'node_modules/ms/package.json'), 'the dependency stays');
    assert.ok(!has(setup, 'blue', 'node_modules/typescript'), 'the devDependency was pruned after the build');
    assert.equal((await readInstallStamp(setup.app.paths.installStamp.blue))?.pruned, true);
    const log1 = (await setup.succeed(['logs'])).stdout;
    assert.match(log1, /\$ npm ci \(with npm_config_include=dev: the build gets the devDependencies\)/);
    assert.match(log1, /\$ npm prune --omit=dev/);

    // Same lockfile: green copies blue's pruned tree, and must put typescript back to build.
    const copied = await timed(setup, ['deploy', '--ref', 'v2']);
    assert.match((await setup.get('/')).body, /cafeteria v2/);
    const log2 = (await setup.succeed(['logs'])).stdout;
    assert.match(log2, /node_modules copied from blue|copying node_modules from blue/);
    assert.match(log2, /1 devDependencies were pruned after the last build here; putting them back/);
    assert.ok(!has(setup, 'green', 'node_modules/typescript'), 'pruned again after the build');
    assert.ok(has(setup, 'blue', 'node_modules/ms/package.json'), "the live color's tree was not touched by the copy");

    // And blue skips its install (same key), puts typescript back, builds, prunes.
    const skipped = await timed(setup, ['deploy', '--ref', 'v3']);
    assert.match((await setup.get('/')).body, /cafeteria v3/);
    const log3 = (await setup.succeed(['logs'])).stdout;
    assert.match(log3, /dependencies of blue are up to date/);
    assert.match(log3, /putting them back for the build/);
    assert.ok(!has(setup, 'blue', 'node_modules/typescript'));
    t.diagnostic(`deploy with a cold npm ci ${cold} ms, with a copy ${copied} ms, with a skip ${skipped} ms (each restores typescript, builds, prunes)`);
  },
);

test("patch-package: v2 runs its own patch with an unchanged lockfile, a rollback runs v1 with v1's (npm registry)", { timeout: 360_000 }, async (t) => {
  const files = await registryApp('patch-package');
  const patch = files['patches/ms+2.1.3.patch']!;
  const setup = await setupDuet(t, {
    app: { install: 'npm ci', build: '""', start: "'exec node --require ms server.js'", env: '{ NODE_ENV: production }' },
    tags: {
      v1: files,
      v2: { VERSION: 'v2\n', 'patches/ms+2.1.3.patch': patch.replace('PATCH_V1', 'PATCH_V2') },
    },
  });
  const patchedBy = async (color: 'blue' | 'green') =>
    /patchedBy = '(\w+)'/.exec(await readFile(join(setup.app.paths.checkout[color], 'node_modules/ms/index.js'), 'utf8'))?.[1];

  await setup.succeed(['deploy', '--ref', 'v1']);
  assert.equal(await patchedBy('blue'), 'PATCH_V1');
  await setup.succeed(['deploy', '--ref', 'v2']);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal(await patchedBy('green'), 'PATCH_V2', "v2's patch, not v1's copied tree");
  assert.match((await setup.succeed(['logs'])).stdout, /not using the install cache: package\.json runs postinstall/);
  assert.ok(!has(setup, 'green', 'node_modules/patch-package'), 'patch-package (a devDependency) was pruned after the install');

  await setup.succeed(['rollback']);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  assert.equal(await patchedBy('blue'), 'PATCH_V1', 'the rollback runs v1 with its own patch');
});

for (const manager of ['pnpm', 'yarn'] as const) {
  test(`a ${manager}-lock project gets ${manager}'s install through corepack, with its devDependencies for the build, pruned after it (npm registry)`, async (t) => {
    const setup = await setupDuet(t, {
      app: {
        install: '~', // unset: duet chooses by the lockfile
        // is-number is a devDependency: the build fails without it; ms is a dependency: the start does.
        build: `"node -e \\"require('is-number')\\""`,
        start: "'exec node --require ms server.js'",
        env: '{ NODE_ENV: production }',
      },
      tags: { v1: { ...(await registryApp(manager)), 'package-lock.json': null }, v2: { VERSION: 'v2\n' } },
    });
    await setup.succeed(['deploy', '--ref', 'v1']);
    assert.match((await setup.get('/')).body, /cafeteria v1/);
    const log = (await setup.succeed(['logs'])).stdout;
    assert.match(
      log,
      manager === 'pnpm' ? /\$ corepack pnpm install --frozen-lockfile --prod=false/ : /\$ corepack yarn install --frozen-lockfile --production=false/,
    );
    assert.match(log, /not using the install cache: (pnpm-lock\.yaml|yarn\.lock) does not say/);
    assert.ok(has(setup, 'blue', 'node_modules/ms/package.json'));
    assert.ok(!has(setup, 'blue', 'node_modules/is-number/package.json'), 'the devDependency was pruned after the build');

    await setup.succeed(['deploy', '--ref', 'v2']);
    assert.match((await setup.get('/')).body, /cafeteria v2/);
    const doctor = await setup.duet(['doctor', '--json']);
    const check = (JSON.parse(doctor.stdout) as Array<{ name: string; ok: boolean; detail: string }>).find((r) => r.name === 'package manager cafeteria');
    assert.ok(check?.ok, JSON.stringify(check));
    assert.match(check.detail, new RegExp(`${manager} \\d+\\.\\d+\\.\\d+ \\(`));
  });
}
