import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { stepNames } from '../../src/pipeline/journal.js';
import { Journal } from '../../src/pipeline/journal.js';
import { setupDuet } from '../support/duet.js';

test('a deploy killed after any step converges when deploy runs again', async (t) => {
  const setup = await setupDuet(t, { standby: 'stop' });
  const { duet, succeed, get, app } = setup;
  await succeed(['deploy', '--ref', 'v1']);
  let live = { version: 'v1', color: 'blue' };

  for (const step of stepNames) {
    const version = live.version === 'v1' ? 'v2' : 'v1';
    const color = live.color === 'blue' ? 'green' : 'blue';
    const crashed = await duet(['deploy', '--ref', version], { DUET_CRASH_AFTER: step });
    assert.notEqual(crashed.code, 0, `the deploy was to be killed after ${step}`);

    const page = await get('/');
    assert.equal(page.status, 200, `after a crash after ${step} the public port still answers`);

    const rerun = await duet(['deploy', '--ref', version]);
    assert.equal(rerun.code, 0, `re-run after a crash after ${step}:\n${rerun.stderr}`);
    const after = await get('/');
    assert.match(after.body, new RegExp(`cafeteria ${version}`), `after ${step}: ${version} is live`);
    assert.equal(after.color, color, `after ${step}: ${color} serves`);
    assert.equal((await duet(['pid', live.color])).code, 1, `after ${step}: the old color is stopped (standby: stop)`);
    assert.equal(existsSync(app.paths.lock), false, `after ${step}: the lock is free`);

    const records = await new Journal(app.paths.journal).records();
    const [interrupted, converged] = records.slice(-2);
    assert.equal(interrupted?.outcome, 'interrupted', `after ${step}: the killed deploy is journaled as interrupted`);
    assert.ok(
      interrupted?.steps.some((s) => s.name === step && s.status !== 'started'),
      `the journal shows ${step} finished before the kill`,
    );
    assert.ok(converged?.outcome === 'success' || converged?.outcome === 'noop', `after ${step}: ${converged?.outcome}`);
    assert.equal(records.filter((r) => r.outcome === null).length, 0, 'no deploy is left open');
    live = { version, color };
  }
});
