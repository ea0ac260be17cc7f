import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { appConfPath } from '../../src/switch/nginx-conf.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';
import { pollUntil } from '../../src/util/poll.js';

/**
 * Breaking deploys (docs/deploy.md): a release the version before it cannot live with. While it
 * is live nginx has no fallback to the old color, the old color is stopped after the drain
 * (whatever `standby` says), and a rollback to it is refused unless --force.
 */

/** What the fallback's lines bring (nginx/app-port.conf.template, `duet:fallback`). */
const FALLBACK = /@duet_fallback|upstream duet_cafeteria_standby/;
const conf = (setup: DuetSetup) => readFile(appConfPath(setup.app, setup.config), 'utf8');
const running = async (setup: DuetSetup, color: 'blue' | 'green') => (await setup.duet(['pid', color])).code === 0;

for (const switchMode of ['port', 'socket'] as const) {
  test(`${switchMode} mode: a breaking deploy (--breaking, or a Duet-Breaking: true trailer) turns the fallback off, stops the old color after the drain, and a rollback to it is refused without --force`, async (t) => {
    const setup = await setupDuet(t, { switchMode, standby: 'keep', app: { drain_s: '0.2' } });
    const hasFallback = async () => (switchMode === 'port' ? FALLBACK.test(await conf(setup)) : existsSync(setup.app.paths.standbySocket));
    await setup.succeed(['deploy', '--ref', 'v1']);
    // (A first deploy in socket mode has no other color to point standby.sock at.)
    if (switchMode === 'port') assert.equal(await hasFallback(), true, 'a plain deploy has the fallback');

    const deployed = await setup.succeed(['deploy', '--ref', 'v2', '--breaking']);
    assert.match(deployed.stderr, /breaking release/);
    assert.match((await setup.get('/')).body, /cafeteria v2/);
    assert.equal(await hasFallback(), false, 'no fallback to the old color');
    assert.equal(await running(setup, 'blue'), false, 'the old color was stopped after the drain although standby is keep');
    const v1 = await setup.repo.revParse('v1^{commit}');
    const v2 = await setup.repo.revParse('v2^{commit}');
    const said = (await setup.succeed(['status'])).stdout;
    assert.match(said, new RegExp(`breaking release live: ${v2.slice(0, 7)} .*no fallback.*a rollback to ${v1.slice(0, 7)} needs --force`));
    const json = JSON.parse((await setup.succeed(['status', '--json'])).stdout);
    assert.deepEqual([json.breaking?.sha, json.breaking?.before], [v2, v1]);

    const refused = await setup.duet(['rollback']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /from before the breaking release .*: a rollback to it is refused/);
    assert.match(refused.stderr, /duet rollback --force/);
    assert.match((await setup.get('/')).body, /cafeteria v2/, 'nothing changed');
    assert.equal(await running(setup, 'blue'), false);

    await setup.succeed(['rollback', '--force']);
    assert.match((await setup.get('/')).body, /cafeteria v1/);
    assert.equal(await hasFallback(), true, 'the fallback is back with a release that is not breaking');
    assert.doesNotMatch((await setup.succeed(['status'])).stdout, /breaking release/, 'v1 is no breaking release');

    // A commit can say so itself.
    await setup.repo.commit({ VERSION: 'v3\n' }, 'v3: drop the old column\n\nDuet-Breaking: true');
    await setup.repo.tag('v3');
    const v3 = await setup.succeed(['deploy', '--ref', 'v3']);
    assert.match(v3.stderr, /Duet-Breaking: true/);
    assert.equal(await hasFallback(), false);
    assert.equal(await running(setup, 'blue'), false, 'v1 stopped after the drain');
    assert.equal((await setup.duet(['rollback'])).code, 1, 'no rollback to v1');
    // After a reboot too: the standby from before the breaking release stays stopped.
    assert.match((await setup.succeed(['bootup'])).stderr, /from before the breaking release .*: it stays stopped/);
    assert.equal(await running(setup, 'blue'), false);
    assert.equal(await hasFallback(), false);
    // And when the operator points nginx at it by hand.
    await setup.succeed(['connect-to-nginx', 'green']);
    assert.equal(await hasFallback(), false);
  });
}

test('{"breaking": true} in the API makes a breaking deploy', async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, { standby: 'keep', top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const serve = await startServe(t, setup.configPath, port);
  const post = (body: unknown) =>
    fetch(`${serve.url}/apps/cafeteria/deploy`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const wrong = await post({ ref: 'v2', breaking: 'yes' });
  assert.equal(wrong.status, 400);
  assert.match((await wrong.json()).error, /"breaking" must be true or false/);
  const asked = await post({ ref: 'v2', breaking: true });
  assert.equal(asked.status, 202);
  const { deploy: id } = (await asked.json()) as { deploy: string };
  const ended = await pollUntil(async () => ((await getJson(`${serve.url}/deploys/${id}`)).body?.finishedAt ? true : undefined), { timeoutMs: 60_000 });
  assert.ok(ended);
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.doesNotMatch(await conf(setup), FALLBACK);
  assert.equal(await running(setup, 'blue'), false);
});
