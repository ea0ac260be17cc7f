import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tarball } from '../support/archives.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { tempDir } from '../support/tmp.js';
import { journalRuns } from '../support/journal.js';

/**
 * source: release_asset (docs/deploy.md, "Prebuilt artifacts"): the deploy takes the built files
 * from the GitHub release of the tag, checked against their published SHA-256 and unpacked under
 * artifact.contains only, and runs no build; every refusal fails at update with v1 still serving.
 */

const REPO = 'inu-appcenter/cafeteria-server';
const TOKEN = { DUET_GITHUB_TOKEN: 'ghs_artifact' };

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function setupArtifact(t: TestContext): Promise<{ setup: DuetSetup; github: GitHubServer; marker: string }> {
  const github = await startGitHubServer(t);
  const marker = join(await tempDir(t, 'duet-artifact-marker'), 'build-ran');
  const setup = await setupDuet(t, {
    top: { github: `{ api_url: "${github.url}" }` },
    app: {
      source: 'release_asset',
      artifact: '{ name: app.tar.gz, contains: [built.txt, dist] }',
      // Either would show that the server built: the marker must never appear.
      build: `'touch "${marker}"'`,
      install: `'mkdir -p node_modules && echo "omit=$npm_config_omit" > install.txt'`,
    },
  });
  return { setup, github, marker };
}

const good = (version: string): Buffer =>
  tarball([
    { path: 'dist/', type: 'Directory' },
    { path: 'dist/main.js', body: `console.log("${version}")\n` },
    { path: './built.txt', body: `prebuilt ${version} by CI\n` },
  ]);

test('a release asset deploys with no build on the server: its published digest checked (GitHub digest or a .sha256 beside it), unpacked, production dependencies only', async (t) => {
  const { setup, github, marker } = await setupArtifact(t);
  const v1 = good('v1');
  // v1: GitHub's own digest of the asset; v2: no digest, a sha256sum line in app.tar.gz.sha256.
  github.serveRelease(REPO, 'v1', [{ name: 'app.tar.gz', bytes: v1, digest: true }]);
  const v2 = good('v2');
  github.serveRelease(REPO, 'v2', [
    { name: 'app.tar.gz', bytes: v2 },
    { name: 'app.tar.gz.sha256', bytes: Buffer.from(`${sha256(v2)}  app.tar.gz\n`) },
  ]);

  await setup.succeed(['deploy', '--ref', 'v1'], TOKEN);
  assert.equal((await setup.get('/built')).body, 'prebuilt v1 by CI');
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  const blue = setup.app.paths.checkout.blue;
  assert.equal(await readFile(join(blue, 'dist', 'main.js'), 'utf8'), 'console.log("v1")\n');
  assert.equal((await readFile(join(blue, 'install.txt'), 'utf8')).trim(), 'omit=dev', 'the install leaves the devDependencies out');

  await setup.succeed(['deploy', '--ref', 'v2'], TOKEN);
  assert.equal((await setup.get('/built')).body, 'prebuilt v2 by CI');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal(existsSync(marker), false, 'no build ran on the server');
  assert.equal(existsSync(join(setup.app.paths.root, 'run', 'green.artifact')), false, 'the downloaded archive is removed');

  const releases = github.matching(/\/releases\/tags\//);
  assert.deepEqual(
    releases.map((r) => r.path),
    [`/repos/${REPO}/releases/tags/v1`, `/repos/${REPO}/releases/tags/v2`],
  );
  assert.equal(releases[0]!.headers.authorization, 'token ghs_artifact', "duet's token");
  assert.equal(github.matching(/^\/_downloads\//).length, 3, 'v1, then v2 and its .sha256');
});

test('a tampered asset (its digest does not match), one with a ../ entry, a missing asset, a tag without a release and a branch each fail at update, named, with v1 still serving', async (t) => {
  const { setup, github, marker } = await setupArtifact(t);
  github.serveRelease(REPO, 'v1', [{ name: 'app.tar.gz', bytes: good('v1'), digest: true }]);
  await setup.succeed(['deploy', '--ref', 'v1'], TOKEN);

  const expectFailure = async (pattern: RegExp, what: string, ref = 'v2'): Promise<string> => {
    const failed = await setup.duet(['deploy', '--ref', ref], TOKEN);
    assert.equal(failed.code, 1, `${what}: ${failed.stderr}`);
    assert.match(failed.stderr, pattern, what);
    assert.match(failed.stderr, /live traffic is untouched/, `${what}: the hint`);
    assert.equal((await setup.get('/built')).body, 'prebuilt v1 by CI', `${what}: v1 still serves`);
    const record = (await journalRuns(setup.app.paths.journal)).at(-1)!;
    assert.equal(record.failedStep, 'update', what);
    return failed.stderr;
  };

  // Tampered: the bytes served are not the ones whose digest GitHub published.
  github.serveRelease(REPO, 'v2', [{ name: 'app.tar.gz', bytes: good('v2-tampered'), digest: `sha256:${sha256(good('v2'))}` }]);
  await expectFailure(/digest mismatch: the app\.tar\.gz of release v2 has sha256 [0-9a-f]{64}, but [0-9a-f]{64} was published/, 'tampered');

  const outside = join(setup.app.paths.root, 'checkouts', 'evil.txt');
  const hostile = tarball([
    { path: 'built.txt', body: 'hostile\n' },
    { path: '../evil.txt', body: 'escaped\n' },
  ]);
  github.serveRelease(REPO, 'v2', [{ name: 'app.tar.gz', bytes: hostile, digest: true }]);
  await expectFailure(/the artifact app\.tar\.gz was refused: entry "\.\.\/evil\.txt" is a path with "\.\."/, '../ entry');
  assert.equal(existsSync(outside), false, 'nothing written outside the checkout');

  const link = tarball([{ path: 'dist/etc', type: 'SymbolicLink', linkpath: '../../../../etc' }]);
  github.serveRelease(REPO, 'v2', [{ name: 'app.tar.gz', bytes: link, digest: true }]);
  await expectFailure(/entry "dist\/etc" is a link leaving artifact\.contains \(to \.\.\/\.\.\/\.\.\/\.\.\/etc\)/, 'symlink leaving');

  github.serveRelease(REPO, 'v2', [{ name: 'app.tar.gz', bytes: tarball([{ path: 'package.json', body: '{}' }]), digest: true }]);
  await expectFailure(/entry "package\.json" is outside artifact\.contains \(built\.txt, dist\)/, 'outside contains');

  github.serveRelease(REPO, 'v2', [{ name: 'other.tar.gz', bytes: good('v2'), digest: true }]);
  await expectFailure(/the release v2 of inu-appcenter\/cafeteria-server has no asset named app\.tar\.gz \(its assets: other\.tar\.gz\)/, 'missing asset');

  github.serveRelease(REPO, 'v2', [{ name: 'app.tar.gz', bytes: good('v2') }]);
  await expectFailure(/no SHA-256 is published for app\.tar\.gz/, 'no digest at all');

  github.respondAlways('GET', new RegExp(`/releases/tags/v2$`), 404);
  await expectFailure(/no GitHub release for tag v2 in inu-appcenter\/cafeteria-server/, 'no release');

  await expectFailure(/source: release_asset deploys tags, and refs\/heads\/main is not one/, 'a branch', 'main');

  assert.equal(existsSync(marker), false, 'no build ran on the server');
  assert.equal(existsSync(join(setup.app.paths.root, 'run', 'green.artifact')), false, 'no refused archive is left on the disk');
});
