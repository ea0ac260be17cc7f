import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { RunStep } from '../../src/errors.js';
import { setupDuet } from '../support/duet.js';
import { journalRuns } from '../support/journal.js';

/**
 * README, "What this guarantees": kill `duet deploy` at any point and run it again, and it
 * converges. Every crash point (src/util/crash-point.ts) between two steps and inside the steps
 * that change the machine, in both switch modes and both standby policies.
 */
const deploySteps: RunStep[] = ['resolve', 'pick', 'update', 'start', 'health', 'switch', 'verify', 'watch', 'retire', 'record'];
const between = deploySteps.flatMap((step) => [`before:${step}`, `after:${step}`]);
const inside = {
  port: ['update:checked-out', 'switch:conf-written', 'stop:signalled'],
  socket: ['update:checked-out', 'switch:live-renamed', 'stop:signalled'],
};

for (const switchMode of ['port', 'socket'] as const) {
  for (const standby of ['keep', 'stop'] as const) {
    // About 26 kills and re-runs each, 50-90 s on 2 cores: a deadline of its own.
    test(`${switchMode} mode, standby: ${standby}: a deploy killed at any point converges when deploy runs again`, { timeout: 300_000 }, async (t) => {
      // Three versions in turn: the idle color always holds another one than the target, so every
      // deploy updates it (and with standby: keep, first stops the older version it runs).
      const versions = ['v1', 'v2', 'v3'];
      const setup = await setupDuet(t, { switchMode, standby, tags: { v1: {}, v2: { VERSION: 'v2\n' }, v3: { VERSION: 'v3\n' } } });
      const { duet, succeed, get, app } = setup;
      await succeed(['deploy', '--ref', 'v1']);
      let live = { version: 'v1', color: 'blue' };

      for (const point of [...inside[switchMode], ...between]) {
        const version = versions[(versions.indexOf(live.version) + 1) % versions.length]!;
        const color = live.color === 'blue' ? 'green' : 'blue';
        const crashed = await duet(['deploy', '--ref', version], { DUET_CRASH_AT: point });
        assert.notEqual(crashed.code, 0, `the deploy was to be killed at ${point}:\n${crashed.stderr}`);

        assert.equal((await get('/')).status, 200, `after a kill at ${point} the public port still answers`);

        const rerun = await duet(['deploy', '--ref', version]);
        assert.equal(rerun.code, 0, `re-run after a kill at ${point}:\n${rerun.stderr}`);
        const after = await get('/');
        assert.match(after.body, new RegExp(`cafeteria ${version}`), `after ${point}: ${version} is live`);
        assert.equal((await duet(['enabled-instance'])).stdout, `${color}\n`, `after ${point}: ${color} is enabled`);
        const old = await duet(['pid', live.color]);
        assert.equal(old.code, standby === 'stop' ? 1 : 0, `after ${point}: the old color ${standby === 'stop' ? 'is stopped' : 'stays warm'}`);
        assert.equal(existsSync(app.paths.lock), false, `after ${point}: the lock is free`);

        const records = await journalRuns(app.paths.journal);
        const [interrupted, converged] = records.slice(-2);
        assert.equal(interrupted?.outcome, 'interrupted', `after ${point}: the killed deploy is journaled as interrupted`);
        if (point.startsWith('after:')) {
          const step = point.slice('after:'.length);
          assert.ok(
            interrupted?.steps.some((s) => s.name === step && s.status !== 'started'),
            `the journal shows ${step} finished before the kill`,
          );
        }
        assert.ok(converged?.outcome === 'success' || converged?.outcome === 'noop', `after ${point}: ${converged?.outcome}`);
        assert.equal(records.filter((r) => r.outcome === null).length, 0, 'no deploy is left open');
        live = { version, color };
      }
    });
  }
}
