import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { groupMembers } from '../../src/util/proc.js';
import { setupDuet } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';
import { journalRuns } from '../support/journal.js';

/**
 * The release step (docs/deploy.md, "The release step"): the app's `release` command between the
 * update and the start, with the start's environment, journaled as a step of its own; a failure
 * or a timeout fails the deploy there and leaves the live color alone; a rollback never runs it.
 */

const parseEnv = (text: string, separator: string): Map<string, string> =>
  new Map(
    text
      .split(separator)
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

/** Set by `sh` itself, not by whoever started it. */
const SHELLS_OWN = new Set(['PWD', 'OLDPWD', 'SHLVL', '_']);

const stepsOf = async (journalPath: string) => (await journalRuns(journalPath)).map((r) => [r.kind, r.outcome, r.steps.map((s) => s.name)] as const);

test("the release runs after the update and before the start, with exactly the start's environment plus DUET_PREVIOUS_REVISION and DUET_RELEASE; a rollback never runs it", async (t) => {
  const out = await tempDir(t, 'duet-release-out');
  const setup = await setupDuet(t, {
    app: {
      // What it saw, and whether the color it releases was running meanwhile (it must not be).
      release: `'env > "$RELEASE_OUT/$DUET_REVISION.env"; echo "$DUET_REVISION" >> "$RELEASE_OUT/runs"'`,
      env: `{ RELEASE_OUT: "${out}", CAFETERIA_DB: "postgres://localhost/cafeteria" }`,
    },
  });
  const v1 = await setup.repo.revParse('v1^{commit}');
  const v2 = await setup.repo.revParse('v2^{commit}');
  await setup.succeed(['deploy', '--ref', 'v1'], { DUET_API_TOKEN: 'api-token-must-not-leak' });
  const first = parseEnv(await readFile(join(out, `${v1}.env`), 'utf8'), '\n');
  assert.equal(first.get('DUET_PREVIOUS_REVISION'), '', 'nothing was live before v1');
  assert.equal(first.get('DUET_RELEASE'), '1');

  await setup.succeed(['deploy', '--ref', 'v2'], { DUET_API_TOKEN: 'api-token-must-not-leak' });
  const release = parseEnv(await readFile(join(out, `${v2}.env`), 'utf8'), '\n');
  const pid = Number((await setup.succeed(['pid', 'green'])).stdout.trim());
  const app = parseEnv(await readFile(`/proc/${pid}/environ`, 'utf8'), '\0');
  for (const name of SHELLS_OWN) [release, app].forEach((env) => env.delete(name));
  assert.equal(release.get('DUET_PREVIOUS_REVISION'), v1, 'the commit the live color ran');
  assert.equal(release.get('DUET_RELEASE'), '1');
  release.delete('DUET_PREVIOUS_REVISION');
  release.delete('DUET_RELEASE');
  assert.deepEqual(Object.fromEntries(release), Object.fromEntries(app), "the release's environment is the app's");
  assert.equal(release.get('DUET_COLOR'), 'green');
  assert.equal(release.get('DUET_REVISION'), v2);
  assert.equal(release.get('PORT'), String(setup.app.ports.green));
  assert.ok(!release.has('DUET_API_TOKEN'), "never duet's secrets");

  await setup.succeed(['rollback']);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  assert.deepEqual((await readFile(join(out, 'runs'), 'utf8')).trim().split('\n'), [v1, v2], 'the rollback did not run the release');

  const journal = await stepsOf(setup.app.paths.journal);
  assert.deepEqual(journal.at(-2), [
    'deploy',
    'success',
    ['resolve', 'pick', 'update', 'release', 'start', 'health', 'switch', 'verify', 'watch', 'retire', 'record'],
  ]);
  assert.ok(!journal.at(-1)![2].includes('release'), 'no release step in a rollback');
  const [, deployed] = JSON.parse((await setup.succeed(['history', '--json'])).stdout);
  assert.match(deployed.steps.find((s: { name: string }) => s.name === 'release').detail, /exited 0/, '`duet history` has it');
  assert.match((await setup.succeed(['logs', deployed.id])).stdout, /step release done in \d+ ms/, 'and the deploy log');
});

test('a failing release fails the deploy at release with its command, exit code and output; the live color serves on, nothing is retried', async (t) => {
  const out = await tempDir(t, 'duet-release-out');
  const setup = await setupDuet(t, {
    app: {
      release: `'echo "release of $DUET_REVISION" >> "$RELEASE_OUT/runs"; test "$DUET_PREVIOUS_REVISION" = "" || { echo "migration 002 failed: column exists" >&2; exit 3; }'`,
      env: `{ RELEASE_OUT: "${out}" }`,
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const failed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /release: `echo "release of .*` exited with code 3/);
  assert.match(failed.stderr, /migration 002 failed: column exists/, 'the output tail');
  assert.match(failed.stderr, /live traffic is untouched/, 'the hint');
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  assert.equal((await setup.duet(['pid', 'green'])).code, 1, 'the idle color was never started');
  assert.equal((await readFile(join(out, 'runs'), 'utf8')).trim().split('\n').length, 2, 'v1 once, v2 once: no retry');
  assert.match((await setup.succeed(['history'])).stdout, /failed .* release: release: `echo/);
  const record = (await journalRuns(setup.app.paths.journal)).at(-1)!;
  assert.equal(record.failedStep, 'release');
  assert.deepEqual(
    record.steps.map((s) => [s.name, s.status]),
    [
      ['resolve', 'done'],
      ['pick', 'done'],
      ['update', 'done'],
      ['release', 'failed'],
    ],
  );
});

test('a release that runs past release_timeout_s gets SIGTERM, then SIGKILL after stop_timeout_s: its whole process group is gone and the deploy fails at release', async (t) => {
  const out = await tempDir(t, 'duet-release-out');
  const setup = await setupDuet(t, {
    app: {
      // $$ is the shell, the leader of the release's process group; node ignores SIGTERM.
      release: `'echo $$ > "$RELEASE_OUT/pgid"; echo migrating; node -e "process.on(\\"SIGTERM\\", () => console.log(\\"ignoring SIGTERM\\")); setInterval(() => {}, 1000)"'`,
      release_timeout_s: '1',
      stop_timeout_s: '1',
      env: `{ RELEASE_OUT: "${out}" }`,
    },
  });
  const started = Date.now();
  const failed = await setup.duet(['deploy', '--ref', 'v1']);
  const ms = Date.now() - started;
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /release: `echo \$\$ .*` did not finish within 1 s and was stopped/);
  assert.match(failed.stderr, /migrating/);
  const pgid = Number((await readFile(join(out, 'pgid'), 'utf8')).trim());
  assert.deepEqual(groupMembers(pgid), [], 'nothing of the release runs on');
  assert.ok(ms >= 2000, `SIGKILL came after the grace (${ms} ms)`);
  const record = (await journalRuns(setup.app.paths.journal)).at(-1)!;
  assert.equal(record.failedStep, 'release');
  assert.equal((await setup.duet(['pid', 'blue'])).code, 1, 'the color was never started');
});
