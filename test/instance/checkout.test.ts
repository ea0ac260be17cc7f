import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { checkedOutRevision, redact, resolveRef } from '../../src/instance/checkout.js';
import { CommandFailedError, DuetError } from '../../src/errors.js';
import { exitCodeOf } from '../../src/error-kinds.js';
import { checkOut, createAppRepo, type AppRepo } from '../support/git-repo.js';
import { assertLeftoversGone, leaveLeftovers } from '../support/leftovers.js';
import { tempDir } from '../support/tmp.js';

/** Git questions about a checkout, asked the way an operator would. */
async function gitIn(dir: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd: dir })).stdout.trim();
}

function collector(): { write(chunk: string): void; text(): string } {
  let text = '';
  return { write: (chunk) => void (text += chunk), text: () => text };
}

async function releases(t: Parameters<typeof createAppRepo>[0]): Promise<{ repo: AppRepo; v1: string; v2: string }> {
  const repo = await createAppRepo(t);
  const v1 = await repo.tag('v1');
  const v2 = await repo.tag('v2', { VERSION: 'v2\n' }, { annotated: true });
  return { repo, v1, v2 };
}

test('resolveRef: a branch, lightweight and annotated tags, full names and shas', async (t) => {
  const { repo, v1, v2 } = await releases(t);
  const main = await repo.commit({ 'NOTES.md': 'after v2\n' }, 'notes');
  await repo.git(['branch', 'feature/main', v1]);
  await repo.git(['push', '--quiet', 'origin', 'feature/main']);

  assert.deepEqual(await resolveRef(repo.bareUrl, 'main'), { sha: main, ref: 'refs/heads/main' });
  assert.deepEqual(await resolveRef(repo.bareUrl, 'refs/heads/main'), { sha: main, ref: 'refs/heads/main' });
  assert.deepEqual(await resolveRef(repo.bareUrl, 'v1'), { sha: v1, ref: 'refs/tags/v1' });

  // An annotated tag resolves to the commit, not the tag object.
  const tagObject = await repo.revParse('v2');
  const commit = await repo.revParse('v2^{commit}');
  assert.notEqual(tagObject, commit);
  assert.equal(v2, commit);
  assert.deepEqual(await resolveRef(repo.bareUrl, 'v2'), { sha: commit, ref: 'refs/tags/v2' });
  assert.deepEqual(await resolveRef(repo.bareUrl, 'refs/tags/v2'), { sha: commit, ref: 'refs/tags/v2' });

  // A sha is taken as is (lowercased), without asking the remote.
  assert.deepEqual(await resolveRef('/nonexistent/repo.git', v1.toUpperCase()), { sha: v1, ref: v1 });
  // A plain local path works as a clone_url too.
  assert.deepEqual(await resolveRef(repo.bareDir, 'v1'), { sha: v1, ref: 'refs/tags/v1' });
});

test('resolveRef: a branch wins over a tag of the same name', async (t) => {
  const { repo, v1, v2 } = await releases(t);
  await repo.git(['branch', 'v1', v2]);
  await repo.git(['push', '--quiet', 'origin', 'refs/heads/v1']);
  assert.deepEqual(await resolveRef(repo.bareUrl, 'v1'), { sha: v2, ref: 'refs/heads/v1' });
  assert.deepEqual(await resolveRef(repo.bareUrl, 'refs/tags/v1'), { sha: v1, ref: 'refs/tags/v1' });
});

test('resolveRef: a missing ref, an invalid ref and an unreachable repo are resolve errors', async (t) => {
  const { repo } = await releases(t);

  await assert.rejects(resolveRef(repo.bareUrl, 'v9'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'resolve');
    assert.match(error.message, /ref "v9" does not exist in file:\/\//);
    assert.ok(error.hint);
    return true;
  });
  // "ain" is a tail of no ref name; "heads/main" is not a name git would pick either.
  await assert.rejects(resolveRef(repo.bareUrl, 'ain'), /does not exist/);
  await assert.rejects(resolveRef(repo.bareUrl, 'refs/tags/main'), /does not exist/);

  await assert.rejects(resolveRef(repo.bareUrl, '--upload-pack=touch /tmp/pwned'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(exitCodeOf(error), 2);
    return true;
  });

  const missing = join(await tempDir(t), 'gone.git');
  await assert.rejects(resolveRef(missing, 'main'), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.step, 'resolve');
    assert.equal(error.exitStatus, 128);
    assert.match(error.message, /does not appear to be a git repository/);
    assert.match(error.hint ?? '', /clone_url/);
    return true;
  });
});

test('a checkout: a fresh dir, then v1 -> v2 -> v1 in the same reused, shallow checkout', async (t) => {
  const { repo, v1, v2 } = await releases(t);
  const state = await tempDir(t);
  const dir = join(state, 'app', 'blue');
  const output = collector();

  assert.equal(await checkedOutRevision(dir), undefined);
  await checkOut(dir, repo.bareUrl, await resolveRef(repo.bareUrl, 'v1'), { output });
  assert.equal(await checkedOutRevision(dir), v1);
  assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), 'v1\n');
  assert.equal(await gitIn(dir, 'rev-parse', '--is-shallow-repository'), 'true');
  assert.match(output.text(), /\$ git fetch --depth 1 --no-tags duet-clone-url [0-9a-f]{40} \(duet-clone-url = file:\S+\)/);

  await writeFile(join(dir, '.git', 'duet-marker'), 'same repository\n');
  await leaveLeftovers(dir);

  await checkOut(dir, repo.bareUrl, await resolveRef(repo.bareUrl, 'v2'), { output });
  assert.equal(await checkedOutRevision(dir), v2);
  assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), 'v2\n');
  assert.equal(await readFile(join(dir, '.git', 'duet-marker'), 'utf8'), 'same repository\n', 'the checkout was recreated');
  assert.equal(await gitIn(dir, 'rev-parse', '--is-shallow-repository'), 'true');
  await assertLeftoversGone(dir);

  // Back to v1: its commit is already here, so nothing is fetched; prove it by taking the remote away.
  await rename(repo.bareDir, `${repo.bareDir}.away`);
  const before = output.text().length;
  await checkOut(dir, repo.bareUrl, { sha: v1, ref: 'refs/tags/v1' }, { output });
  assert.equal(await checkedOutRevision(dir), v1);
  assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), 'v1\n');
  assert.doesNotMatch(output.text().slice(before), /git fetch/);
  assert.doesNotMatch(output.text(), /git init/, 'init is for directories without .git only');
});

test('a checkout fetches from clone_url itself: a changed clone_url takes effect, no remote is kept', async (t) => {
  const { repo, v1 } = await releases(t);
  const dir = join(await tempDir(t), 'green');
  await checkOut(dir, repo.bareDir, { sha: v1, ref: 'refs/tags/v1' });
  // The repository moved (a fork, a new host): a commit only the new place has.
  const moved = await createAppRepo(t);
  const elsewhere = await moved.tag('v9', { VERSION: 'v9\n' });
  await checkOut(dir, moved.bareUrl, { sha: elsewhere, ref: 'refs/tags/v9' });
  assert.equal(await checkedOutRevision(dir), elsewhere);
  assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), 'v9\n');
  assert.equal(await gitIn(dir, 'remote'), '', 'no remote to drift from duet.yml');
});

/**
 * A `git` first in PATH that appends its arguments to a log, then runs the real one. Returns a
 * reader of the command lines logged since the previous read.
 */
async function recordGitCommands(t: TestContext): Promise<() => Promise<string>> {
  const bin = await tempDir(t);
  const argvLog = join(bin, 'argv.log');
  const realGit = (await execa('sh', ['-c', 'command -v git'])).stdout.trim();
  await writeFile(join(bin, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvLog}'\nexec '${realGit}' "$@"\n`, { mode: 0o755 });
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  t.after(() => void (process.env.PATH = path));
  let seen = 0;
  return async () => {
    const all = existsSync(argvLog) ? await readFile(argvLog, 'utf8') : '';
    const fresh = all.slice(seen);
    seen = all.length;
    return fresh;
  };
}

test("clone_url never reaches git's command line, where a token in it would be visible to every local user", async (t) => {
  const { repo, v1 } = await releases(t);
  const commands = await recordGitCommands(t);

  const dir = join(await tempDir(t), 'blue');
  await checkOut(dir, repo.bareUrl, await resolveRef(repo.bareUrl, 'v1'));
  assert.equal(await checkedOutRevision(dir), v1);
  const argv = await commands();
  assert.match(argv, /^ls-remote /m);
  assert.match(argv, /^fetch /m);
  assert.ok(!argv.includes(repo.bareDir), `the URL is not in any git command line:\n${argv}`);
});

test('a commit the checkout already holds is not fetched again; a new one is', async (t) => {
  const { repo, v1, v2 } = await releases(t);
  const commands = await recordGitCommands(t);
  const dir = join(await tempDir(t), 'blue');

  await checkOut(dir, repo.bareUrl, { sha: v1, ref: 'refs/tags/v1' });
  assert.doesNotMatch(await commands(), /^cat-file /m, 'a new repository has nothing to look for');
  await checkOut(dir, repo.bareUrl, { sha: v2, ref: 'refs/tags/v2' });
  assert.match(await commands(), /^fetch /m, 'v2 is not there yet');
  await checkOut(dir, repo.bareUrl, { sha: v1, ref: 'refs/tags/v1' });
  const third = await commands();
  assert.match(third, /^cat-file -e /m, 'git is asked');
  assert.doesNotMatch(third, /^fetch /m, 'and it has it');
  assert.equal(await checkedOutRevision(dir), v1);
});

test('a checkout: a commit that is no branch or tag tip is fetched by its sha', async (t) => {
  const { repo, v1 } = await releases(t);
  const middle = await repo.commit({ VERSION: 'v1.5\n' }, 'between');
  await repo.commit({ VERSION: 'v3\n' }, 'after');
  const dir = join(await tempDir(t), 'blue');
  await checkOut(dir, repo.bareUrl, await resolveRef(repo.bareUrl, middle));
  assert.equal(await checkedOutRevision(dir), middle);
  assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), 'v1.5\n');
  assert.notEqual(middle, v1);
});

test('a checkout: when the server refuses a fetch by sha, the ref is fetched by name', async (t) => {
  const { repo, v1, v2 } = await releases(t);
  const dir = join(await tempDir(t), 'blue');
  const output = collector();
  await checkOut(dir, repo.bareUrl, { sha: v1, ref: 'refs/tags/v1' });
  // Protocol v0 only serves advertised objects: an annotated tag's commit is not one of them
  // (unless it is also the tip of main, hence the commits after each tag).
  await repo.commit({ VERSION: 'after v2\n' });
  await gitIn(dir, 'config', 'protocol.version', '0');
  await checkOut(dir, repo.bareUrl, { sha: v2, ref: 'refs/tags/v2' }, { output });
  assert.equal(await checkedOutRevision(dir), v2);
  assert.match(output.text(), /unadvertised object/);
  assert.match(output.text(), /fetching refs\/tags\/v2 instead/);

  // Without a ref name to fall back on, the refusal is the error.
  const v3 = await repo.tag('v3', { VERSION: 'v3\n' }, { annotated: true });
  await repo.commit({ VERSION: 'after v3\n' });
  await assert.rejects(checkOut(dir, repo.bareUrl, { sha: v3, ref: v3 }), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError);
    assert.equal(error.step, 'update');
    assert.match(error.message, /unadvertised object/);
    return true;
  });

  // A ref that moved between resolve and fetch is reported as such.
  const v4 = await repo.tag('v4', { VERSION: 'v4\n' }, { annotated: true });
  await repo.git(['tag', '--force', '--annotate', '--message', 'moved', 'v4', v1]);
  await repo.commit({ VERSION: 'after v4\n' });
  await assert.rejects(checkOut(dir, repo.bareUrl, { sha: v4, ref: 'refs/tags/v4' }), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'update');
    assert.match(error.message, /refs\/tags\/v4 in file:\/\/.* no longer points at/);
    return true;
  });
});

test("a checkout: a commit the remote does not have is an update error with git's message", async (t) => {
  const { repo } = await releases(t);
  const dir = join(await tempDir(t), 'blue');
  const unknown = 'f'.repeat(40);
  await assert.rejects(checkOut(dir, repo.bareUrl, { sha: unknown, ref: unknown }), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.step, 'update');
    assert.match(error.message, /git fetch --depth 1 --no-tags duet-clone-url f{40} \(duet-clone-url = file:\S+\)/);
    assert.match(error.outputTail, /not our ref|remote error|couldn't find remote ref|fatal/i);
    assert.ok(error.hint);
    return true;
  });
  assert.equal(await checkedOutRevision(dir), undefined);
  await assert.rejects(checkOut(dir, repo.bareUrl, { sha: 'main', ref: 'main' }), /not a full commit sha/);
});

test('a checkout survives a lock file left by a crashed git', async (t) => {
  const { repo, v1, v2 } = await releases(t);
  const dir = join(await tempDir(t), 'blue');
  await checkOut(dir, repo.bareUrl, { sha: v1, ref: 'refs/tags/v1' });
  await writeFile(join(dir, '.git', 'index.lock'), '');
  await checkOut(dir, repo.bareUrl, { sha: v2, ref: 'refs/tags/v2' });
  assert.equal(await checkedOutRevision(dir), v2);
});

test('checkedOutRevision: undefined for a dir without its own .git, even inside a repository', async (t) => {
  const { repo } = await releases(t);
  const inside = join(repo.workDir, 'sub');
  await mkdir(inside);
  assert.equal(await checkedOutRevision(inside), undefined);
  assert.equal(await checkedOutRevision(join(repo.workDir, 'nope')), undefined);
  const empty = join(await tempDir(t), 'empty');
  await mkdir(empty);
  await gitIn(empty, 'init', '--quiet');
  assert.equal(await checkedOutRevision(empty), undefined);
});

test('git runs against the checkout even when GIT_DIR points elsewhere (duet started from a hook)', async (t) => {
  const { repo, v1 } = await releases(t);
  const dir = join(await tempDir(t), 'blue');
  const saved = process.env.GIT_DIR;
  process.env.GIT_DIR = join(repo.workDir, '.git');
  t.after(() => {
    if (saved === undefined) delete process.env.GIT_DIR;
    else process.env.GIT_DIR = saved;
  });
  await checkOut(dir, repo.bareUrl, { sha: v1, ref: 'refs/tags/v1' });
  assert.equal(await checkedOutRevision(dir), v1);
  delete process.env.GIT_DIR;
  assert.equal(await gitIn(repo.workDir, 'remote', 'get-url', 'origin'), repo.bareDir, 'the work tree repo was touched');
});

/** An HTTP git server that answers every request with `respond` (or never, without it). */
async function httpRemote(t: Parameters<typeof createAppRepo>[0], respond?: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(respond ?? (() => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}/app.git`;
}

test('git never waits for a password, and a token in clone_url stays out of the error', async (t) => {
  const host = await httpRemote(t, (_request, response) => {
    response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
  });
  await assert.rejects(resolveRef(`http://${host}`, 'main'), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.exitStatus, 128);
    assert.match(error.outputTail, /terminal prompts disabled/);
    return true;
  });
  await assert.rejects(resolveRef(`http://ghp_secret@${host}`, 'main'), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.match(error.command, /^git ls-remote -- duet-clone-url main main\^\{\} \(duet-clone-url = http:\/\/\*\*\*@127\.0\.0\.1/);
    assert.match(error.outputTail, /terminal prompts disabled/);
    assert.doesNotMatch(`${error.message}\n${error.hint}`, /ghp_secret/);
    return true;
  });
});

test('a checkout: a git command that outlives timeoutMs is killed', { timeout: 30_000 }, async (t) => {
  const host = await httpRemote(t);
  const dir = join(await tempDir(t), 'blue');
  const output = collector();
  const sha = 'a'.repeat(40);
  const started = Date.now();
  await assert.rejects(checkOut(dir, `http://${host}`, { sha, ref: sha }, { output, timeoutMs: 1000 }), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.step, 'update');
    assert.equal(error.exitStatus, undefined);
    assert.match(error.message, /`git fetch --depth 1 --no-tags duet-clone-url a{40} \(duet-clone-url = http:\S+\)` was killed/);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'the timeout did not apply');
  assert.match(output.text(), /\$ git fetch/);
});

test('variables simple-git refuses to pass on (EDITOR, GIT_SSH_COMMAND) do not stop git', async (t) => {
  const { repo, v1 } = await releases(t);
  const saved = { EDITOR: process.env.EDITOR, GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND };
  Object.assign(process.env, { EDITOR: 'vi', GIT_SSH_COMMAND: 'false' });
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  const dir = join(await tempDir(t), 'blue');
  await checkOut(dir, repo.bareUrl, await resolveRef(repo.bareUrl, 'v1'));
  assert.equal(await checkedOutRevision(dir), v1);
});

test('credentials in URLs are hidden from messages and logs', () => {
  assert.equal(redact('https://ghp_secret@github.com/o/r.git'), 'https://***@github.com/o/r.git');
  assert.equal(redact('fatal: https://x-access-token:abc@github.com/o/r'), 'fatal: https://***@github.com/o/r');
  assert.equal(redact('ssh://git:pw@host/r.git'), 'ssh://git:***@host/r.git');
  assert.equal(redact('git@github.com:o/r.git'), 'git@github.com:o/r.git');
});
