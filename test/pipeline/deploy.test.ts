import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setupDuet } from '../support/duet.js';

for (const switchMode of ['port', 'socket'] as const) {
  test(`deploy v1 -> v2 -> rollback in ${switchMode} mode, checking the public port at each point`, async (t) => {
    const setup = await setupDuet(t, { switchMode });
    const { duet, get } = setup;
    const v1 = await setup.repo.revParse('v1^{commit}');
    const v2 = await setup.repo.revParse('v2^{commit}');

    assert.equal((await duet(['enabled-instance'])).code, 1, 'nothing is enabled before the first deploy');

    const first = await duet(['deploy', '--ref', 'v1']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`${v1.slice(0, 7)} live on blue`));
    let page = await get('/');
    assert.match(page.body, /cafeteria v1/);
    if (switchMode === 'port') assert.equal(page.color, 'blue');
    assert.equal((await duet(['enabled-instance'])).stdout, 'blue\n');

    const second = await duet(['deploy', '--ref', 'v2']);
    assert.equal(second.code, 0, second.stderr);
    page = await get('/');
    assert.match(page.body, /cafeteria v2/);
    assert.match(page.body, /color green/);
    assert.equal((await duet(['enabled-instance'])).stdout, 'green\n');
    assert.equal((await duet(['disabled-instance'])).stdout, 'blue\n');

    const status = JSON.parse((await duet(['status', '--json'])).stdout);
    assert.equal(status.app, 'cafeteria');
    assert.equal(status.enabled, 'green');
    assert.equal(status.colors.green.revision, v2);
    assert.equal(status.colors.green.ref, 'refs/tags/v2');
    assert.equal(status.colors.green.healthy, true);
    assert.equal(status.colors.blue.revision, v1);
    assert.equal(status.colors.blue.running, true, 'standby: keep leaves blue warm');
    assert.equal(status.deploying, null);

    const again = await duet(['deploy', '--ref', 'v2']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already live on green; nothing to do/);

    const back = await duet(['rollback']);
    assert.equal(back.code, 0, back.stderr);
    page = await get('/');
    assert.match(page.body, /cafeteria v1/);
    assert.equal((await duet(['enabled-instance'])).stdout, 'blue\n');

    const history = JSON.parse((await duet(['history', '--json'])).stdout);
    assert.deepEqual(
      history.map((r: { kind: string; outcome: string }) => `${r.kind}:${r.outcome}`),
      ['rollback:success', 'deploy:noop', 'deploy:success', 'deploy:success'],
    );
  });
}

test('a deploy that changed the dependencies copies them for the next deploy, which only renames them into place', async (t) => {
  const lockfile = (version: string): string => `${JSON.stringify({ name: 'cafeteria', version, lockfileVersion: 3, packages: {} }, null, 2)}\n`;
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'package-lock.json': lockfile('2.0.0') }, v3: { VERSION: 'v3\n' } },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const changed = await setup.succeed(['deploy', '--ref', 'v2']);
  assert.match(changed.stderr, /copied green's node_modules for blue's next deploy in \d+ ms/);
  // Where docs/deploy.md says: <state_dir>/<app>/run/<color>.node_modules.next.
  const copy = join(setup.app.paths.root, 'run', 'blue.node_modules.next');
  const ready = `${copy}.json`;
  assert.ok(existsSync(ready), 'the copy made ahead is marked complete');
  // Marks this very tree, to tell it from a copy made during the next deploy.
  await writeFile(join(copy, 'made-ahead'), '');

  const next = await setup.succeed(['deploy', '--ref', 'v3']);
  assert.match(next.stderr, /update: done in [\d.]+s \(install copied\)/);
  assert.ok(existsSync(join(setup.app.paths.checkout.blue, 'node_modules', 'made-ahead')), 'the copy made ahead was used');
  assert.equal(existsSync(ready), false, 'its marker went with it');
  assert.doesNotMatch(next.stderr, /copied blue's node_modules/, 'both colors have one lockfile now: nothing to copy ahead');
  assert.match((await setup.get('/')).body, /cafeteria v3/);
});
