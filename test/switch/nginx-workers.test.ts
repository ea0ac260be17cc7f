import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureManagedNginx } from '../../src/switch/managed-nginx.js';
import { reloadNginx } from '../../src/switch/nginx-reload.js';
import { markBeforeReload, stillAccepting } from '../../src/switch/nginx-workers.js';
import { pollUntil } from '../../src/util/poll.js';
import { switchFixture } from './fixture.js';
import { tempDir } from '../support/tmp.js';

const title = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '(gone)';
  }
};

test('a reload is done for new connections once every worker from before it is gone or shutting down', async (t) => {
  const f = await switchFixture(t);
  await ensureManagedNginx(f.config);
  // Its workers start a moment after the master writes its pid file.
  const mark = await pollUntil(
    async () => {
      const m = markBeforeReload(f.config);
      return m && m.workers.length > 0 ? m : undefined;
    },
    { timeoutMs: 10_000 },
  );
  assert.ok(mark, 'the managed master is found through its pid file');
  assert.ok(mark.workers.length > 0, 'it has workers');
  assert.deepEqual(
    stillAccepting(mark),
    mark.workers.map((w) => w.pid),
    'before the reload they all accept',
  );

  await reloadNginx(f.config);
  const done = await pollUntil(async () => (stillAccepting(mark).length === 0 ? true : undefined), { timeoutMs: 10_000, maxIntervalMs: 5 });
  assert.ok(done, 'the old workers stop accepting');
  // Gone, a zombie not yet reaped (an empty cmdline), or told to quit.
  for (const { pid } of mark.workers) assert.match(title(pid), /^$|^\(gone\)$|is shutting down/, `old worker ${pid}`);
  const fresh = markBeforeReload(f.config)!;
  assert.ok(fresh.workers.length > 0 && fresh.workers.every((w) => !mark.workers.some((old) => old.pid === w.pid)), 'new workers took over');
});

test('the mark before a reload takes only a live nginx master for one', async (t) => {
  const f = await switchFixture(t);
  const pidFile = join(await tempDir(t), 'nginx.pid');
  const config = { ...f.config, nginx: { ...f.config.nginx, pidFile } };
  assert.equal(markBeforeReload(config), undefined, 'no pid file');
  await writeFile(pidFile, `${process.pid}\n`);
  assert.equal(markBeforeReload(config), undefined, 'a live process that is not nginx');
  await writeFile(pidFile, 'garbage\n');
  assert.equal(markBeforeReload(config), undefined, 'not a pid');
});
