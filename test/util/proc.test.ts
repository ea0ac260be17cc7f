import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { allPids, childrenOf, hasExited, procCmdline, procStat } from '../../src/util/proc.js';

test('procStat, procCmdline and childrenOf read this process and its child from /proc', async (t) => {
  const me = procStat(process.pid);
  assert.ok(me);
  assert.equal(me.ppid, process.ppid);
  assert.match(me.startTime, /^\d+$/);
  assert.equal(hasExited(me), false);
  assert.ok(allPids().includes(process.pid));

  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  assert.ok(childrenOf(process.pid).includes(child.pid!));
  assert.equal(procCmdline(child.pid!), 'sleep 30', 'NULs between arguments read as spaces');

  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(procStat(child.pid!), undefined, 'a reaped child is gone');
  assert.equal(procStat(2 ** 22 + 1), undefined, 'a pid above pid_max');
});
