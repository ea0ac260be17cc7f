import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from '../support/test.js';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { startEarlyCopy } from '../../src/instance/early-copy.js';
import { pollUntil } from '../../src/util/poll.js';
import { recordStepGroup } from '../../src/util/step-group.js';
import { tempDir } from '../support/tmp.js';

test('an early copy a killed duet left running is stopped before the next one starts in its place', async (t) => {
  const stateDir = await tempDir(t, 'duet-early-copy');
  const app = pickApp(parseConfig(`state_dir: ${stateDir}\napps:\n  cafeteria:\n    clone_url: x\n`, 'duet.yml'), 'cafeteria');
  // What a duet killed mid-copy leaves: the copy's process group, recorded, still running.
  const leftover = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  t.after(() => leftover.kill('SIGKILL'));
  await recordStepGroup(app.paths.copyGroup.blue, leftover.pid!, 'cp -a --reflink=auto -- green/node_modules blue.node_modules.next');
  const seen: string[] = [];
  await startEarlyCopy(app, 'blue', { write: (chunk) => seen.push(chunk) });
  const gone = await pollUntil(
    async () => (existsSync(`/proc/${leftover.pid}`) && leftover.exitCode === null && leftover.signalCode === null ? undefined : true),
    {
      timeoutMs: 10_000,
    },
  );
  assert.ok(gone, 'the leftover copy still runs');
  assert.match(seen.join(''), /duet: stopped `cp -a .*` \(process group \d+\), left running by a duet that died/);
  assert.equal(existsSync(app.paths.copyGroup.blue), false, 'its record is gone');
});
