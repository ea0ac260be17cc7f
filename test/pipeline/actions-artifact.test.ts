import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tarball, zip } from '../support/archives.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { tempDir } from '../support/tmp.js';

/**
 * source: actions_artifact (docs/deploy.md, "Prebuilt artifacts"): the deploy takes the built
 * files from the artifact a successful GitHub Actions run uploaded for the deployed commit (any
 * ref), a zip holding one tarball, checked against GitHub's published digest, and runs no build;
 * an expired, unpublished, tampered or malformed artifact fails at update with v1 still serving.
 */

const REPO = 'inu-appcenter/cafeteria-server';
const TOKEN = { DUET_GITHUB_TOKEN: 'ghs_actions' };
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

const built = (version: string): Buffer =>
  tarball([
    { path: 'dist/', type: 'Directory' },
    { path: 'dist/main.js', body: `console.log("${version}")\n` },
    { path: 'built.txt', body: `prebuilt ${version} by CI\n` },
  ]);

const artifactOf = async (version: string): Promise<Buffer> => zip({ 'app.tar.gz': built(version) });

async function setupActions(t: TestContext): Promise<{ setup: DuetSetup; github: GitHubServer; marker: string }> {
  const github = await startGitHubServer(t);
  const marker = join(await tempDir(t, 'duet-actions-marker'), 'build-ran');
  const setup = await setupDuet(t, {
    top: { github: `{ api_url: "${github.url}" }` },
    app: {
      source: 'actions_artifact',
      artifact: '{ name: app, workflow: build.yml, contains: [built.txt, dist] }',
      build: `'touch "${marker}"'`,
    },
  });
  return { setup, github, marker };
}

test('a push deploys the artifact of its successful workflow run: the named workflow only, the newest run first, GitHub digest checked, no build on the server', async (t) => {
  const { setup, github, marker } = await setupActions(t);
  const first = await setup.repo.revParse('main');
  github.serveWorkflowRun(REPO, { sha: first, workflow: 'build.yml', artifacts: [{ name: 'app', bytes: await artifactOf('v1'), digest: true }] });
  // Another workflow's artifact of the same name, newer: artifact.workflow keeps it out.
  github.serveWorkflowRun(REPO, { sha: first, workflow: 'lint.yml', artifacts: [{ name: 'app', bytes: await artifactOf('lint'), digest: true }] });

  await setup.succeed(['deploy', '--ref', 'main'], TOKEN);
  assert.equal((await setup.get('/built')).body, 'prebuilt v1 by CI');

  const second = await setup.repo.commit({ 'CHANGES.md': 'v2\n' }, 'v2');
  github.serveWorkflowRun(REPO, {
    sha: second,
    workflow: 'build.yml',
    artifacts: [{ name: 'app', bytes: await artifactOf('v2-first-attempt'), digest: true }],
  });
  github.serveWorkflowRun(REPO, { sha: second, workflow: 'build.yml', artifacts: [{ name: 'app', bytes: await artifactOf('v2'), digest: true }] });
  await setup.succeed(['deploy', '--ref', 'main'], TOKEN);
  assert.equal((await setup.get('/built')).body, 'prebuilt v2 by CI', "the re-run's artifact");

  assert.equal(existsSync(marker), false, 'no build ran on the server');
  const leftovers = (await readdir(join(setup.app.paths.root, 'run'))).filter((name) => name.includes('.artifact'));
  assert.deepEqual(leftovers, [], 'neither the zip nor the tarball is left');
  const asked = github.matching(/\/actions\/workflows\/build\.yml\/runs$/);
  assert.equal(asked.length, 2);
  assert.match(asked[1]!.url, new RegExp(`head_sha=${second}`));
  assert.match(asked[1]!.url, /status=success/);
  assert.equal(asked[0]!.headers.authorization, 'token ghs_actions', "duet's token");
});

test('no run yet, an expired artifact, no digest, a tampered zip, a zip without one tarball, a hostile tarball inside and bytes that are no zip each fail at update, named, with v1 still serving', async (t) => {
  const { setup, github, marker } = await setupActions(t);
  github.serveWorkflowRun(REPO, {
    sha: await setup.repo.revParse('main'),
    workflow: 'build.yml',
    artifacts: [{ name: 'app', bytes: await artifactOf('v1'), digest: true }],
  });
  await setup.succeed(['deploy', '--ref', 'main'], TOKEN);
  const sha = await setup.repo.commit({ 'CHANGES.md': 'v2\n' }, 'v2');

  const expectFailure = async (pattern: RegExp, what: string): Promise<void> => {
    const failed = await setup.duet(['deploy', '--ref', 'main'], TOKEN);
    assert.equal(failed.code, 1, `${what}: ${failed.stderr}`);
    assert.match(failed.stderr, pattern, what);
    assert.match(failed.stderr, /live traffic is untouched/, `${what}: the hint`);
    assert.equal((await setup.get('/built')).body, 'prebuilt v1 by CI', `${what}: v1 still serves`);
  };
  const run = (artifact: { bytes: Buffer; digest?: boolean | string; expired?: boolean; name?: string }): void =>
    github.serveWorkflowRun(REPO, { sha, workflow: 'build.yml', artifacts: [{ name: 'app', digest: true, ...artifact }] });

  await expectFailure(
    new RegExp(`no successful workflow run of build\\.yml for ${sha.slice(0, 12)} .* has an artifact named app.*wait until CI has passed`, 's'),
    'no run yet',
  );
  run({ name: 'other', bytes: await artifactOf('v2') });
  await expectFailure(/has an artifact named app.*upload the artifact as app/s, 'a run without it');
  run({ bytes: await artifactOf('v2'), expired: true });
  await expectFailure(/the artifact app of run \d+ of build\.yml for [0-9a-f]{12} expired on 2026-12-01.*re-run the workflow/s, 'expired');
  run({ bytes: await artifactOf('v2'), digest: false });
  await expectFailure(/GitHub publishes no SHA-256 digest of the artifact app.*upload-artifact v4/s, 'no digest');
  run({ bytes: await artifactOf('v2-tampered'), digest: `sha256:${sha256(await artifactOf('v2'))}` });
  await expectFailure(/digest mismatch: the artifact app of run \d+ of build\.yml has sha256 [0-9a-f]{64}, but [0-9a-f]{64} was published/, 'tampered');
  run({ bytes: await zip({ 'a.txt': Buffer.from('a'), 'b.txt': Buffer.from('b') }) });
  await expectFailure(/the artifact app was refused: it must hold one \.tar or \.tar\.gz and holds a\.txt, b\.txt/, 'no tarball');
  run({ bytes: await zip({ 'app.tar.gz': tarball([{ path: '../evil.txt', body: 'escaped\n' }]) }) });
  await expectFailure(/the artifact app was refused: entry "\.\.\/evil\.txt" is a path with "\.\."/, 'hostile tarball');
  run({ bytes: Buffer.from('not a zip at all') });
  await expectFailure(/the artifact app was refused: it is not a readable zip/, 'not a zip');

  assert.equal(existsSync(marker), false, 'no build ran on the server');
  const leftovers = (await readdir(join(setup.app.paths.root, 'run'))).filter((name) => name.includes('.artifact'));
  assert.deepEqual(leftovers, [], 'no refused archive is left on the disk');
});
