import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { identify } from '../../src/instance/process-identity.js';
import { pollUntil } from '../../src/util/poll.js';
import { execa } from 'execa';
import { cliPath, setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';

test('duet serve killed -9 during the install: the resumed deploy first stops the install the dead one left running', async (t) => {
  const port = await freePort();
  // The first install records its shell and a background child, then hangs; any later one is quick.
  const install = `'if [ ! -e ../install.pids ]; then echo $$ > ../install.pids; sleep 120 & echo $! >> ../install.pids; wait; fi; mkdir -p node_modules'`;
  const setup = await setupDuet(t, { tags: { v1: {} }, app: { install }, top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  const pidsFile = join(setup.app.paths.root, 'install.pids');
  const first = await startServe(t, setup.configPath, port);
  const submitted = await fetch(`${first.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref: 'v1' }),
  });
  const { deploy: id } = (await submitted.json()) as { deploy: string };
  const pids = await pollUntil(
    async () => {
      const listed = (await readFile(pidsFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
      return listed.length === 2 ? listed : undefined;
    },
    { timeoutMs: 30_000 },
  );
  assert.ok(pids, `the install runs\n${first.output()}`);
  const starts = await Promise.all(pids.map(async (pid) => (await identify(pid))?.startTime));
  // Whatever the outcome, the test leaves no install behind.
  t.after(async () => {
    for (const [i, pid] of pids.entries()) if (starts[i] && (await identify(pid))?.startTime === starts[i]) process.kill(pid, 'SIGKILL');
  });

  await first.crash();
  for (const [i, pid] of pids.entries()) assert.equal((await identify(pid))?.startTime, starts[i], 'the install outlived duet serve');

  const second = await startServe(t, setup.configPath, port);
  const record = await pollUntil(
    async () => {
      const { body } = await getJson(`${second.url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? body : undefined;
    },
    { timeoutMs: 30_000, maxIntervalMs: 200 },
  );
  assert.equal(record?.state, 'succeeded', JSON.stringify(record));
  for (const pid of pids) assert.equal(await identify(pid), undefined, `install process ${pid} was stopped`);
  const log = await (await fetch(`${second.url}/deploys/${id}/log`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).text();
  assert.match(log, new RegExp(`stopped \`.*\` \\(process group ${pids[0]}, since [^)]+\\), left running in blue by a duet that died`));
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  await second.stop();
});

test('Ctrl-C on a `duet deploy` at the terminal stops its install too, though the install runs in a session of its own', async (t) => {
  const install = `'echo $$ > ../install.pids; sleep 120 & echo $! >> ../install.pids; wait'`;
  const setup = await setupDuet(t, { tags: { v1: {} }, app: { install } });
  const pidsFile = join(setup.app.paths.root, 'install.pids');
  const deploying = execa('node', [cliPath(), '--config', setup.configPath, 'deploy', '--ref', 'v1'], { reject: false, stdin: 'ignore' });
  t.after(() => void deploying.kill('SIGKILL'));
  const pids = await pollUntil(
    async () => {
      const listed = (await readFile(pidsFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
      return listed.length === 2 ? listed : undefined;
    },
    { timeoutMs: 30_000 },
  );
  assert.ok(pids, 'the install runs');
  const starts = await Promise.all(pids.map(async (pid) => (await identify(pid))?.startTime));
  t.after(async () => {
    for (const [i, pid] of pids.entries()) if (starts[i] && (await identify(pid))?.startTime === starts[i]) process.kill(pid, 'SIGKILL');
  });
  deploying.kill('SIGINT');
  const result = await deploying;
  assert.notEqual(result.exitCode, 0, 'the deploy did not finish');
  for (const pid of pids) {
    const gone = await pollUntil(async () => ((await identify(pid)) === undefined ? true : undefined), { timeoutMs: 5000 });
    assert.ok(gone, `install process ${pid} was stopped with duet`);
  }
});
