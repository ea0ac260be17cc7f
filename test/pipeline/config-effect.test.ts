import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { setupDuet, type DuetSetup } from '../support/duet.js';

/** Sets MSG in duet.yml's env of the app, as an operator edits it. */
async function setMsg(setup: DuetSetup, value: string): Promise<void> {
  const text = await readFile(setup.configPath, 'utf8');
  await writeFile(setup.configPath, text.replace(/env: \{ MSG: \w+ \}/, `env: { MSG: ${value} }`));
}

/** What the live color was started with and built with. */
async function answers(setup: DuetSetup): Promise<string> {
  return `MSG=${(await setup.get('/env/MSG')).body} built=${(await setup.get('/built')).body}`;
}

test('a changed env in duet.yml reaches the app and its build: on a deploy onto the warm color, a rollback, and a deploy of the live commit (a config deploy, not a no-op)', async (t) => {
  const setup = await setupDuet(t, { app: { env: '{ MSG: a }', build: `'echo "$MSG" > built.txt'` } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  assert.equal(await answers(setup), 'MSG=a built=a');

  await setMsg(setup, 'b');
  let status = JSON.parse((await setup.succeed(['status', '--json'])).stdout);
  assert.equal(status.colors.green.configChanged, 'configuration', 'status says the live color runs an older configuration');
  const status_text = (await setup.succeed(['status'])).stdout;
  assert.match(status_text, /configuration changed since start/);

  // blue holds v1, warm, built and started with MSG=a: it is built again, not put live as it is.
  const warm = await setup.succeed(['deploy', '--ref', 'v1']);
  assert.match(warm.stderr, /update: done/, warm.stderr);
  assert.equal(await answers(setup), 'MSG=b built=b');

  const back = await setup.succeed(['rollback']);
  assert.match(back.stderr, /rebuild green/, back.stderr);
  assert.equal(await answers(setup), 'MSG=b built=b');
  status = JSON.parse((await setup.succeed(['status', '--json'])).stdout);
  assert.equal(status.colors.green.configChanged, null);

  const same = await setup.succeed(['deploy', '--ref', 'v2']);
  assert.match(same.stdout, /already live on green; nothing to do/, 'nothing changed: a no-op still');

  await setMsg(setup, 'c');
  const config = await setup.succeed(['deploy', '--ref', 'v2']);
  assert.match(config.stderr, /is live on green, but its configuration changed since/);
  assert.doesNotMatch(config.stdout, /nothing to do/);
  assert.equal(await answers(setup), 'MSG=c built=c');
  assert.equal((await setup.get('/')).color, 'blue', 'the live commit went into the idle color');
  const history = JSON.parse((await setup.succeed(['history', '--json'])).stdout);
  assert.equal(`${history[0].kind}:${history[0].outcome}`, 'deploy:success');
});
