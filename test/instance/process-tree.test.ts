import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readPidfile } from '../../src/instance/pidfile.js';
import { identify } from '../../src/instance/process-identity.js';
import { procCmdline } from '../../src/util/proc.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';

/** Kill -9 the process duet started for `color` (npm, the group's leader) and wait until it is gone. */
async function killLeader(t: TestContext, setup: DuetSetup, color: 'blue' | 'green'): Promise<{ leader: number; app: number }> {
  const record = await readPidfile(setup.app.paths.pidfile[color]);
  assert.ok(record, `${color} has a pidfile`);
  const app = Number((await setup.succeed(['pid', color])).stdout.trim());
  const appStart = (await identify(app))?.startTime;
  // Whatever happens to the test, the app process it orphans does not outlive it.
  t.after(async () => {
    if (appStart && (await identify(app))?.startTime === appStart) process.kill(app, 'SIGKILL');
  });
  process.kill(record.pid, 'SIGKILL');
  const gone = await pollUntil(async () => ((await identify(record.pid)) === undefined ? true : undefined), { timeoutMs: 5000, initialIntervalMs: 5 });
  assert.ok(gone, 'the leader died');
  assert.equal((await identify(app))?.startTime, appStart, 'its app process lives on, orphaned, holding the port');
  return { leader: record.pid, app };
}

test('duet pid prints the app process under `npm start`; what a killed leader leaves running is stopped, not refused over', async (t) => {
  const setup = await setupDuet(t, { app: { start: 'npm start' } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const leader = (await readPidfile(setup.app.paths.pidfile.blue))!.pid;
  const printed = Number((await setup.succeed(['pid', 'blue'])).stdout.trim());
  assert.notEqual(printed, leader, 'not npm, the group leader duet started');
  assert.match(procCmdline(printed) ?? '', /node server\.js/, 'the process that listens');

  const blue = await killLeader(t, setup, 'blue');
  await setup.succeed(['deploy', '--ref', 'v2']);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  // Back to blue, whose port the orphan held: it used to fail "taken by a process duet did not start".
  await setup.succeed(['deploy', '--ref', 'v1']);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  assert.equal(await identify(blue.app), undefined, 'the orphan of the killed leader was stopped');

  const green = await killLeader(t, setup, 'green');
  const stopped = await setup.succeed(['stop-instance', 'green']);
  assert.match(stopped.stdout + stopped.stderr, /stopped|killed/);
  assert.equal(await identify(green.app), undefined, 'stop-instance stops the whole group, leader or not');
});
