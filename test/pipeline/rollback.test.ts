import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';

const rollbackFrom = (url: string, from: string): Promise<Response> =>
  fetch(`${url}/apps/cafeteria/rollback`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ from }),
  });

for (const switchMode of ['port', 'socket'] as const) {
  test(`three rollbacks of one bad deploy (API, CLI, API again) roll back once and never toggle it back (${switchMode} mode)`, async (t) => {
    const port = await freePort();
    // v1 takes 2.5 s to listen and the standby is stopped: the first rollback holds the app's lock
    // while it starts v1, the time for the others to be asked while v2 is still live.
    const setup = await setupDuet(t, {
      switchMode,
      standby: 'stop',
      tags: { v1: { 'behaviour.json': '{"startDelayMs":2500}' }, v2: { VERSION: 'v2\n', 'behaviour.json': '{}' } },
      top: { server: `{ listen: "127.0.0.1:${port}" }` },
    });
    const v1 = await setup.repo.revParse('v1^{commit}');
    const v2 = await setup.repo.revParse('v2^{commit}');
    await setup.succeed(['deploy', '--ref', 'v1']);
    await setup.succeed(['deploy', '--ref', 'v2']);
    const serve = await startServe(t, setup.configPath, port);

    const first = await rollbackFrom(serve.url, v2.slice(0, 7));
    assert.equal(first.status, 202);
    const { deploy: firstId } = (await first.json()) as { deploy: string };
    const starting = await pollUntil(
      async () => ((await getJson(`${serve.url}/deploys/${firstId}`)).body?.steps?.some((s: { name: string }) => s.name === 'start') ? true : undefined),
      { timeoutMs: 30_000 },
    );
    assert.ok(starting, 'the first rollback starts v1');

    // Both asked while v2 is still live: the CLI reads it as it starts, the API checks it at once.
    const cli = setup.duet(['rollback']);
    const second = await rollbackFrom(serve.url, v2);
    assert.equal(second.status, 202, 'v2 is still live when the second API rollback is asked for');
    const { deploy: secondId } = (await second.json()) as { deploy: string };
    assert.notEqual(secondId, firstId);

    const fromCli = await cli;
    assert.equal(fromCli.code, 1, fromCli.stderr);
    assert.match(fromCli.stderr, /waiting for the lock held by pid/, 'the CLI asked while the first rollback ran');
    assert.match(fromCli.stderr, new RegExp(`the rollback was to undo ${v2.slice(0, 7)}, but ${v1.slice(0, 7)} is live on blue; nothing was changed`));
    assert.match(fromCli.stderr, new RegExp(`duet rollback cafeteria --from ${v1.slice(0, 7)}`));

    const ended = async (id: string) =>
      pollUntil(
        async () => {
          const { body } = await getJson(`${serve.url}/deploys/${id}`);
          return body?.finishedAt ? body : undefined;
        },
        { timeoutMs: 30_000 },
      );
    assert.equal((await ended(firstId))?.state, 'succeeded');
    const refused = await ended(secondId);
    assert.equal(refused?.state, 'failed', 'the queued rollback ran after the first, and changed nothing');
    assert.match(refused?.summary, new RegExp(`but ${v1.slice(0, 7)} is live on blue; nothing was changed`));
    assert.equal(refused?.failedStep, 'pick');

    // Asked after the first one went live: refused at once, nothing queued.
    const late = await rollbackFrom(serve.url, v2);
    assert.equal(late.status, 409);
    const answer = (await late.json()) as { error: string; live: { color: string; sha: string }; hint: string };
    assert.deepEqual(answer.live, { color: 'blue', sha: v1 });
    assert.match(answer.error, new RegExp(`${v1.slice(0, 7)} is live on blue; nothing was changed`));
    assert.match(answer.hint, new RegExp(`\\{"from": "${v1.slice(0, 7)}"\\}`));

    const page = await setup.get('/');
    assert.match(page.body, /cafeteria v1/);
    assert.equal((await setup.succeed(['enabled-instance'])).stdout, 'blue\n');
    const history = JSON.parse((await setup.succeed(['history', '--json'])).stdout) as Array<{ kind: string; outcome: string }>;
    assert.deepEqual(
      history.filter((r) => r.kind === 'rollback').map((r) => r.outcome),
      ['failed', 'failed', 'success'],
      'one rollback ran; the CLI and the second API rollback stopped at the check',
    );
    await serve.stop();
  });
}

test('duet rollback --from: refused while another commit is live, and the commit named in any case', async (t) => {
  const setup = await setupDuet(t);
  const v1 = await setup.repo.revParse('v1^{commit}');
  const v2 = await setup.repo.revParse('v2^{commit}');
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);

  const invalid = await setup.duet(['rollback', '--from', 'v2']);
  assert.equal(invalid.code, 2, invalid.stderr);
  assert.match(invalid.stderr, /invalid --from "v2": a commit id is 7 to 64 hex digits/);
  const stale = await setup.duet(['rollback', '--from', v1.slice(0, 10)]);
  assert.equal(stale.code, 1, stale.stderr);
  assert.match(stale.stderr, new RegExp(`the rollback was to undo ${v1.slice(0, 7)}, but ${v2.slice(0, 7)} is live on green; nothing was changed`));
  assert.equal((await setup.succeed(['enabled-instance'])).stdout, 'green\n', 'nothing was changed');

  const back = await setup.succeed(['rollback', '--from', v2.slice(0, 7).toUpperCase()]);
  assert.match(back.stdout, new RegExp(`rolled back from ${v2.slice(0, 7)} to ${v1.slice(0, 7)} on blue`));
  assert.match((await setup.get('/')).body, /cafeteria v1/);
});
