import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, pickApp, type AppConfig } from '../../src/config/load.js';
import type { Color } from '../../src/config/schema.js';
import { CommandFailedError } from '../../src/errors.js';
import { resolveRef } from '../../src/instance/checkout.js';
import { copyAhead, discardEarlyCopy, removeReplacedModules, startEarlyCopy } from '../../src/instance/early-copy.js';
import { installDependencies } from '../../src/instance/install.js';
import { findLockfile, installFingerprint } from '../../src/instance/install-key.js';
import { readInstallStamp } from '../../src/instance/install-stamp.js';
import { nodeRuntime } from '../../src/instance/node-runtime.js';
import { pruneDevDependencies } from '../../src/instance/dev-dependencies.js';
import { checkOut, createAppRepo, type AppRepo } from '../support/git-repo.js';
import { tempDir } from '../support/tmp.js';

/** Counts real runs: each appends the color to <app root>/install-count (the checkout's parent). */
/** Where docs/deploy.md says an early copy is made: <state_dir>/<app>/run/<color>.node_modules.next. */
const earlyCopyPath = (app: AppConfig, color: Color): string => join(app.paths.root, 'run', `${color}.node_modules.next`);
const COUNTING_INSTALL = 'mkdir -p node_modules/dep && echo "$DUET_COLOR" > node_modules/dep/index.js && echo "$DUET_COLOR" >> ../install-count';

interface Fixture {
  repo: AppRepo;
  app: AppConfig;
  /** Check out `ref` in `color`'s dir, as a deploy would. */
  checkout(color: Color, ref: string): Promise<void>;
  install(color: Color): ReturnType<typeof installDependencies>;
  runs(color: Color): Promise<number>;
}

async function fixture(t: TestContext, install = COUNTING_INSTALL): Promise<Fixture> {
  const repo = await createAppRepo(t);
  await repo.tag('v1');
  const state = await tempDir(t, 'duet-state');
  const config = parseConfig(
    `state_dir: ${JSON.stringify(state)}\napps:\n  cafeteria:\n    clone_url: ${JSON.stringify(repo.bareUrl)}\n    install: ${JSON.stringify(install)}\n`,
    'duet.yml',
  );
  const app = pickApp(config, undefined);
  return {
    repo,
    app,
    checkout: async (color, ref) => checkOut(app.paths.checkout[color], repo.bareUrl, await resolveRef(repo.bareUrl, ref)),
    install: (color) => installDependencies(app, color, { env: { DUET_COLOR: color } }),
    runs: async (color) => {
      const text = existsSync(join(app.paths.root, 'install-count')) ? await readFile(join(app.paths.root, 'install-count'), 'utf8') : '';
      return text.split('\n').filter((line) => line === color).length;
    },
  };
}

/** A new lockfile version in a new tag: a dependency change. */
async function tagNewLockfile(f: Fixture, tag: string, version: string): Promise<void> {
  const lock = JSON.parse(await readFile(join(f.repo.workDir, 'package-lock.json'), 'utf8')) as { version: string };
  lock.version = version;
  await f.repo.tag(tag, { VERSION: `${tag}\n`, 'package-lock.json': `${JSON.stringify(lock, null, 2)}\n` });
}

/** Both colors on v1's dependencies: blue installed them, green copied them. */
async function bothColorsOnV1(f: Fixture): Promise<void> {
  await f.checkout('blue', 'v1');
  await f.checkout('green', 'v1');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await f.install('green'), 'copied');
}

test('install, then skip while the lockfile is unchanged, across checkouts of new versions', async (t) => {
  const f = await fixture(t);
  await f.checkout('blue', 'v1');
  const output: string[] = [];
  assert.equal(await installDependencies(f.app, 'blue', { env: { DUET_COLOR: 'blue' }, output: { write: (s) => void output.push(s) } }), 'installed');
  assert.equal(await f.runs('blue'), 1);
  assert.match(output.join(''), /\$ mkdir -p node_modules/);

  const stamp = await readInstallStamp(f.app.paths.installStamp.blue);
  const runtime = await nodeRuntime(process.env.PATH);
  assert.equal(runtime.version, process.version, 'the node on PATH is the one running the tests');
  // The key is of the environment the install ran with: the app's, and what asks npm for the devDependencies.
  assert.equal(
    stamp?.fingerprint,
    await installFingerprint(f.app.paths.checkout.blue, { command: COUNTING_INSTALL, env: { DUET_COLOR: 'blue', npm_config_include: 'dev' }, runtime }),
  );
  assert.equal(stamp?.nodeModules, true);
  assert.ok(!Number.isNaN(Date.parse(stamp?.installedAt ?? '')));

  assert.equal(await f.install('blue'), 'skipped');
  // A new version with the same lockfile: node_modules survives the checkout, the install is skipped.
  await f.repo.tag('v2', { VERSION: 'v2\n' });
  await f.checkout('blue', 'v2');
  assert.equal(await readFile(join(f.app.paths.checkout.blue, 'node_modules', 'dep', 'index.js'), 'utf8'), 'blue\n');
  assert.equal(await f.install('blue'), 'skipped');
  assert.equal(await f.runs('blue'), 1);

  // node_modules gone (someone cleaned up): the stamp alone is not enough.
  await rm(join(f.app.paths.checkout.blue, 'node_modules'), { recursive: true });
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await f.runs('blue'), 2);
});

test('the other color with the same lockfile is copied, as a real copy', async (t) => {
  const f = await fixture(t);
  await bothColorsOnV1(f);
  assert.equal(await f.runs('green'), 0, 'green ran the install command');

  const blueFile = join(f.app.paths.checkout.blue, 'node_modules', 'dep', 'index.js');
  const greenFile = join(f.app.paths.checkout.green, 'node_modules', 'dep', 'index.js');
  assert.equal(await readFile(greenFile, 'utf8'), 'blue\n');
  const [a, b] = [await stat(blueFile), await stat(greenFile)];
  assert.notEqual(a.ino, b.ino, 'the colors share a file');
  assert.equal(a.nlink, 1);
  assert.equal(b.nlink, 1);
  await writeFile(greenFile, 'changed by green\n');
  assert.equal(await readFile(blueFile, 'utf8'), 'blue\n');

  const stamp = await readInstallStamp(f.app.paths.installStamp.green);
  assert.equal(stamp?.fingerprint, (await readInstallStamp(f.app.paths.installStamp.blue))?.fingerprint);
  assert.equal(stamp?.copiedFrom, 'blue');
  assert.equal(await f.install('green'), 'skipped');

  // A stale node_modules in the target is replaced, not merged into.
  await rm(f.app.paths.installStamp.green);
  await writeFile(join(f.app.paths.checkout.green, 'node_modules', 'stale.js'), 'old\n');
  assert.equal(await f.install('green'), 'copied');
  assert.equal(existsSync(join(f.app.paths.checkout.green, 'node_modules', 'stale.js')), false);
  assert.equal(existsSync(join(f.app.paths.checkout.green, 'node_modules', 'node_modules')), false);
});

test('a changed lockfile or install command means a real install', async (t) => {
  const f = await fixture(t);
  await f.checkout('blue', 'v1');
  await f.checkout('green', 'v1');
  assert.equal(await f.install('blue'), 'installed');

  await tagNewLockfile(f, 'v2', '2.0.0');
  await f.checkout('green', 'v2');
  assert.equal(await f.install('green'), 'installed', 'blue has other dependencies: no copy');
  assert.equal(await f.runs('green'), 1);
  await f.checkout('blue', 'v2');
  assert.equal(await f.install('blue'), 'copied');
  assert.equal(await f.runs('blue'), 1);

  // Same lockfile, another command: the fingerprint covers the command too.
  const changed: AppConfig = { ...f.app, install: `${COUNTING_INSTALL} && true` };
  assert.equal(await installDependencies(changed, 'blue', { env: { DUET_COLOR: 'blue' } }), 'installed');
  assert.equal(await f.runs('blue'), 2);
});

test('after a dependency change, the next deploy into the other color copies while the checkout is made', async (t) => {
  const f = await fixture(t);
  await bothColorsOnV1(f);
  assert.equal(await startEarlyCopy(f.app, 'blue'), undefined, 'both colors on one lockfile: no early copy');

  await tagNewLockfile(f, 'v2', '2.0.0');
  await f.checkout('blue', 'v2');
  assert.equal(await f.install('blue'), 'installed');

  // green still has v1's dependencies: the copy of blue's starts before green's checkout.
  const early = await startEarlyCopy(f.app, 'green');
  assert.ok(early, 'an early copy is made');
  await f.checkout('green', 'v2');
  assert.equal(await installDependencies(f.app, 'green', { env: { DUET_COLOR: 'green' }, early }), 'copied');
  assert.equal(await f.runs('green'), 0, 'no install ran in green');
  assert.equal(await readFile(join(f.app.paths.checkout.green, 'node_modules', 'dep', 'index.js'), 'utf8'), 'blue\n');
  assert.equal((await readInstallStamp(f.app.paths.installStamp.green))?.copiedFrom, 'blue');
  assert.equal(existsSync(earlyCopyPath(f.app, 'green')), false, 'moved into place');
  assert.equal(existsSync(`${earlyCopyPath(f.app, 'green')}.old`), true, 'the old tree waits aside, out of the checkout');
  await removeReplacedModules(f.app, 'green');
  assert.equal(existsSync(`${earlyCopyPath(f.app, 'green')}.old`), false, 'the old tree is gone');

  // A bet that loses: blue moves on to other dependencies, green's early copy (of blue's v2
  // tree) does not match what green is deployed with, and is discarded for a real install.
  await tagNewLockfile(f, 'v3', '3.0.0');
  await f.checkout('blue', 'v3');
  assert.equal(await f.install('blue'), 'installed');
  await tagNewLockfile(f, 'v4', '4.0.0');
  const lost = await startEarlyCopy(f.app, 'green');
  assert.ok(lost);
  await f.checkout('green', 'v4');
  assert.equal(await installDependencies(f.app, 'green', { env: { DUET_COLOR: 'green' }, early: lost }), 'installed');
  await discardEarlyCopy(lost);
  assert.equal(await f.runs('green'), 1);
  assert.equal(existsSync(earlyCopyPath(f.app, 'green')), false, 'the unused copy is removed');
});

test('a copy made ahead, after the other color changed its dependencies, is what the next install renames into place', async (t) => {
  const f = await fixture(t);
  await bothColorsOnV1(f);
  assert.equal(await copyAhead(f.app, 'blue'), false, 'both colors on one lockfile: nothing to copy ahead');
  assert.equal(existsSync(earlyCopyPath(f.app, 'blue')), false);

  await tagNewLockfile(f, 'v2', '2.0.0');
  await f.checkout('blue', 'v2');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await copyAhead(f.app, 'green'), true, 'green still has v1 dependencies: copied ahead');
  // Marks this very tree, to tell it from a copy made later.
  await writeFile(join(earlyCopyPath(f.app, 'green'), 'made-ahead'), '');
  assert.equal(await copyAhead(f.app, 'green'), false, 'one is ready: none is made again');

  const early = await startEarlyCopy(f.app, 'green');
  assert.ok(early, 'the copy made ahead is handed out');
  await f.checkout('green', 'v2');
  assert.equal(await installDependencies(f.app, 'green', { env: { DUET_COLOR: 'green' }, early }), 'copied');
  assert.equal(existsSync(join(f.app.paths.checkout.green, 'node_modules', 'made-ahead')), true, 'the tree copied ahead, not a new copy');
  assert.equal(await readFile(join(f.app.paths.checkout.green, 'node_modules', 'dep', 'index.js'), 'utf8'), 'blue\n');
  assert.equal(await f.runs('green'), 0);
  assert.equal(existsSync(`${earlyCopyPath(f.app, 'green')}.json`), false, 'its marker went with it');
});

test('a copy made ahead is not trusted without its marker, nor once the other color moved on', async (t) => {
  const f = await fixture(t);
  await bothColorsOnV1(f);
  await tagNewLockfile(f, 'v2', '2.0.0');
  await f.checkout('blue', 'v2');
  assert.equal(await f.install('blue'), 'installed');

  // A copy cut short by a crash: the tree is there, the marker never was.
  assert.equal(await copyAhead(f.app, 'green'), true);
  await rm(`${earlyCopyPath(f.app, 'green')}.json`);
  await writeFile(join(earlyCopyPath(f.app, 'green'), 'half-made'), '');
  const fresh = await startEarlyCopy(f.app, 'green');
  assert.ok(fresh && (await fresh.done));
  assert.equal(existsSync(join(fresh.path, 'half-made')), false, 'copied again from scratch');
  await discardEarlyCopy(fresh);

  // A complete copy of a tree blue no longer has.
  assert.equal(await copyAhead(f.app, 'green'), true);
  await writeFile(join(earlyCopyPath(f.app, 'green'), 'of-v2'), '');
  await tagNewLockfile(f, 'v3', '3.0.0');
  await f.checkout('blue', 'v3');
  assert.equal(await f.install('blue'), 'installed');
  const again = await startEarlyCopy(f.app, 'green');
  assert.ok(again && (await again.done));
  assert.equal(existsSync(join(again.path, 'of-v2')), false, 'the stale copy was replaced');
  assert.equal(again.fingerprint, (await readInstallStamp(f.app.paths.installStamp.blue))?.fingerprint);
  await discardEarlyCopy(again);
  assert.equal(existsSync(earlyCopyPath(f.app, 'green')), false);
});

test('a failing install reports exit code and output, and leaves no stamp', async (t) => {
  const f = await fixture(t);
  await f.checkout('blue', 'v1');
  assert.equal(await f.install('blue'), 'installed');
  assert.ok(existsSync(f.app.paths.installStamp.blue));

  await f.repo.tag('v2', { 'package-lock.json': '{"lockfileVersion":3,"packages":{}}\n' });
  await f.checkout('blue', 'v2');
  const failing: AppConfig = { ...f.app, install: 'echo "npm ERR! something broke"; echo to-stderr >&2; exit 7' };
  await assert.rejects(installDependencies(failing, 'blue', {}), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.step, 'install');
    assert.equal(error.exitStatus, 7);
    assert.match(error.outputTail, /npm ERR! something broke/);
    assert.match(error.outputTail, /to-stderr/);
    assert.match(error.message, /exited with code 7/);
    assert.ok(error.hint);
    return true;
  });
  assert.equal(existsSync(f.app.paths.installStamp.blue), false, 'a stale stamp survived a failed install');
  // And so the next attempt installs again even though node_modules is there.
  assert.equal(await f.install('blue'), 'installed');
});

test('without a lockfile the install always runs and no stamp is written', async (t) => {
  const f = await fixture(t);
  await f.repo.tag('nolock', { 'package-lock.json': null });
  await f.checkout('blue', 'nolock');
  await f.checkout('green', 'nolock');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await f.install('green'), 'installed');
  assert.equal(await f.runs('blue'), 2);
  assert.equal(await f.runs('green'), 1);
  assert.equal(existsSync(f.app.paths.installStamp.blue), false);
});

test('a project whose install creates no node_modules is skipped the second time', async (t) => {
  const f = await fixture(t, 'echo "$DUET_COLOR" >> ../install-count');
  await f.checkout('blue', 'v1');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal((await readInstallStamp(f.app.paths.installStamp.blue))?.nodeModules, false);
  assert.equal(await f.install('blue'), 'skipped');
  assert.equal(await f.runs('blue'), 1);
  // Nothing to copy from blue: green installs for itself.
  await f.checkout('green', 'v1');
  assert.equal(await f.install('green'), 'installed');
});

test('npm ci on the fixture lockfile (no dependencies) installs, then skips', async (t) => {
  const f = await fixture(t, 'npm ci --no-audit --no-fund --offline');
  await f.checkout('blue', 'v1');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await f.install('blue'), 'skipped');
});

test('the lockfile is the first present of npm, shrinkwrap, yarn and pnpm ones', async (t) => {
  const dir = await tempDir(t);
  await mkdir(dir, { recursive: true });
  assert.equal(findLockfile(dir), undefined);
  for (const name of ['pnpm-lock.yaml', 'yarn.lock', 'npm-shrinkwrap.json', 'package-lock.json']) {
    await writeFile(join(dir, name), name);
    assert.equal(findLockfile(dir), join(dir, name));
  }
});

/** A `node` on PATH that claims another version when asked (as duet asks), and runs the real one otherwise. */
async function fakeNode(t: TestContext, version: string, modules: string): Promise<string> {
  const dir = await tempDir(t, 'fake-node');
  const answer = JSON.stringify({ version, modules, platform: process.platform, arch: process.arch });
  await writeFile(join(dir, 'node'), `#!/bin/sh\nif [ "$1" = -p ]; then echo '${answer}'; else exec ${process.execPath} "$@"; fi\n`, { mode: 0o755 });
  return `${dir}:${process.env.PATH}`;
}

test("the install cache's key: package.json, .npmrc, the install's environment and the Node.js that runs it", async (t) => {
  const f = await fixture(t);
  await f.checkout('blue', 'v1');
  assert.equal(await f.install('blue'), 'installed');
  const again = (env: Record<string, string> = {}) => installDependencies(f.app, 'blue', { env: { DUET_COLOR: 'blue', ...env } });
  assert.equal(await again({ DUET_REVISION: 'a'.repeat(40) }), 'skipped', "a deploy's own variables are not part of the key");

  // Same lockfile, another package.json (its scripts, overrides, engines).
  const pkg = JSON.parse(await readFile(join(f.repo.workDir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  await f.repo.tag('v2', { 'package.json': `${JSON.stringify({ ...pkg, scripts: { ...pkg.scripts, build: 'node -e 0' } }, null, 2)}\n` });
  await f.checkout('blue', 'v2');
  assert.equal(await again(), 'installed');
  assert.equal(await again(), 'skipped');

  await f.repo.tag('v3', { '.npmrc': 'legacy-peer-deps=true\n' });
  await f.checkout('blue', 'v3');
  assert.equal(await again(), 'installed', 'a changed .npmrc');

  assert.equal(await again({ NODE_ENV: 'production' }), 'installed', "the app's env reaches the install");
  assert.equal(await again({ NODE_ENV: 'production' }), 'skipped');

  const upgraded = await fakeNode(t, 'v22.11.0', '127');
  assert.equal((await nodeRuntime(upgraded)).modules, '127');
  assert.equal(await again({ NODE_ENV: 'production', PATH: upgraded }), 'installed', 'another Node.js ABI: native addons must be rebuilt');
  assert.equal(await f.runs('blue'), 5);

  // The other color, on the old Node.js, does not get this tree copied.
  await f.checkout('green', 'v3');
  assert.equal(await installDependencies(f.app, 'green', { env: { DUET_COLOR: 'green', NODE_ENV: 'production' } }), 'installed');
  assert.equal(await installDependencies(f.app, 'green', { env: { DUET_COLOR: 'green', NODE_ENV: 'production', PATH: upgraded } }), 'copied');
});

test('prune: off when the app says so; nothing to prune (and no npm run) when the lockfile lists no devDependency', async (t) => {
  const f = await fixture(t);
  await f.checkout('blue', 'v1');
  assert.equal(await f.install('blue'), 'installed');
  assert.equal(await pruneDevDependencies({ ...f.app, prune: false }, 'blue', { env: {} }), 'off');
  assert.equal(await pruneDevDependencies(f.app, 'blue', { env: {} }), 'nothing to prune');
  assert.equal((await readInstallStamp(f.app.paths.installStamp.blue))?.pruned, undefined, 'the stamp still describes a full tree');
});
