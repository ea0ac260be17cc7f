import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { readPidfile } from '../../src/instance/pidfile.js';
import { setupDuet } from '../support/duet.js';
import { journalRuns } from '../support/journal.js';

/**
 * README, "Truth from the machine": what nginx, git and the kernel hold is read from them, never
 * from what duet wrote down about it. Each test makes the record and the machine disagree.
 */

test("enabled-instance is the color nginx's conf names, not the one the last deploy picked", async (t) => {
  const setup = await setupDuet(t);
  await setup.succeed(['deploy', '--ref', 'v1']);
  // Killed after it picked green and started it, before the switch: the journal says green.
  const killed = await setup.duet(['deploy', '--ref', 'v2'], { DUET_CRASH_AT: 'before:switch' });
  assert.notEqual(killed.code, 0, killed.stderr);
  const killedRun = (await journalRuns(setup.app.paths.journal)).at(-1);
  assert.equal(killedRun?.color, 'green', 'the journal names the color the killed deploy picked');

  assert.equal((await setup.duet(['enabled-instance'])).stdout, 'blue\n');
  assert.equal((await setup.duet(['disabled-instance'])).stdout, 'green\n');
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'and blue is what answers');
});

test("a stopped color's revision is the commit checked out in its directory: a checkout changed by hand is updated again", async (t) => {
  const setup = await setupDuet(t);
  const v1 = await setup.repo.revParse('v1^{commit}');
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  await setup.succeed(['stop-instance', 'blue']);
  // Blue's record says it was prepared for v1; its checkout now holds another commit.
  const dir = setup.app.paths.checkout.blue;
  await writeFile(join(dir, 'VERSION'), 'edited by hand\n');
  const commit = ['-c', 'user.name=test', '-c', 'user.email=test@example.com', 'commit', '--quiet', '-am', 'by hand'];
  await execa('git', commit, { cwd: dir });

  await setup.succeed(['deploy', '--ref', 'v1']);
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'blue was checked out at v1 again, not started from the hand-made commit');
  assert.equal((await execa('git', ['rev-parse', 'HEAD'], { cwd: dir })).stdout, v1);
  const status = JSON.parse((await setup.succeed(['status', '--json'])).stdout);
  assert.equal(status.colors.blue.revision, v1);
});

test("duet pid is the app's process that listens, not the shell duet started it with", async (t) => {
  // No exec: `sh -c` stays the group's leader, the pid in the pidfile; node is its child.
  const setup = await setupDuet(t, { app: { start: "'node server.js; echo the app ended'" } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const shell = (await readPidfile(setup.app.paths.pidfile.blue))?.pid;
  const pid = Number((await setup.succeed(['pid', 'blue'])).stdout.trim());
  assert.notEqual(pid, shell, 'the shell duet started');
  assert.match(await readFile(`/proc/${pid}/cmdline`, 'utf8'), /^node\0server\.js\0$/);
});
