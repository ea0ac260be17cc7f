import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { isTriggerEvent } from '../../src/pipeline/trigger.js';
import { pollUntil } from '../../src/util/poll.js';
import { cliPath, setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe, WEBHOOK_SECRET } from '../support/serve.js';
import { journalEvents } from '../support/journal.js';

test('a second duet serve on the same state dir refuses, naming the first, and touches no deploy', async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"startDelayMs":4000}' } },
    top: { server: `{ listen: "127.0.0.1:${port}" }` },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const first = await startServe(t, setup.configPath, port);
  const submitted = await fetch(`${first.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref: 'v2' }),
  });
  const { deploy: id } = (await submitted.json()) as { deploy: string };
  // While v2 takes its 4 s to listen, the first server's deploy is running: what a second
  // server used to pick up as "interrupted" and run again.
  const inHealth = await pollUntil(
    async () => ((await getJson(`${first.url}/deploys/${id}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined),
    { timeoutMs: 30_000 },
  );
  assert.ok(inHealth, 'the first server deploys v2');
  // The trigger events in the journal: the first server's run appends its steps there meanwhile.
  const triggerLines = async () => (await journalEvents(setup.app.paths.journal)).filter(isTriggerEvent);
  const before = await triggerLines();

  const second = execa('node', [cliPath(), '--config', setup.configPath, 'serve'], {
    reject: false,
    stdin: 'ignore',
    all: true,
    env: { DUET_WEBHOOK_SECRET: WEBHOOK_SECRET, DUET_API_TOKEN: API_TOKEN },
    timeout: 20_000,
  });
  t.after(() => void second.kill('SIGKILL'));
  const refused = await second;
  assert.equal(refused.exitCode, 1, String(refused.all));
  assert.match(
    String(refused.all),
    new RegExp(`another duet serve \\(pid ${first.child.pid}, since [^)]+\\) already runs on the state dir ${setup.config.stateDir}`),
  );
  assert.match(String(refused.all), new RegExp(`hint: only one duet serve may run per state_dir: stop pid ${first.child.pid} first`));
  assert.deepEqual(await triggerLines(), before, 'the second server wrote no trigger event');
  const begins = (await journalEvents(setup.app.paths.journal)).filter((e) => e.type === 'begin');
  assert.ok(
    begins.every((e) => e.pid !== second.pid),
    'the second server began no deploy',
  );

  const done = await pollUntil(
    async () => {
      const { body } = await getJson(`${first.url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? body : undefined;
    },
    { timeoutMs: 30_000, maxIntervalMs: 200 },
  );
  assert.equal(done?.state, 'succeeded', JSON.stringify(done));
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  await first.stop();
});
