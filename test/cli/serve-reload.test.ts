import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startGitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { getJson, postWebhook, startServe, tagPush, type ServeProcess } from '../support/serve.js';

/**
 * `systemctl reload duet` (SIGHUP): duet serve reads duet.yml again, as `duet install` asks it
 * to. Before, a running duet serve deployed every webhook with the duet.yml it started with, and
 * SIGHUP stopped it.
 */
const REPO = 'inu-appcenter/cafeteria-server';

async function editConfig(setup: DuetSetup, edit: (text: string) => string): Promise<void> {
  await writeFile(setup.configPath, edit(await readFile(setup.configPath, 'utf8')));
}

/** SIGHUP, then the log line that says how the reload ended. */
async function hangUp(serve: ServeProcess, line: RegExp): Promise<void> {
  const before = serve.output().length;
  serve.child.kill('SIGHUP');
  const logged = await pollUntil(async () => (line.test(serve.output().slice(before)) ? true : undefined), { timeoutMs: 10_000 });
  assert.ok(logged, `no ${line} after SIGHUP:\n${serve.output().slice(before)}`);
}

async function deployTag(serve: ServeProcess, setup: DuetSetup, tag: string): Promise<void> {
  const sha = await setup.repo.revParse(`${tag}^{commit}`);
  const response = await postWebhook(serve.url, 'push', tagPush(REPO, tag, sha), `delivery-${tag}`);
  assert.equal(response.status, 202);
  const { deploy: id } = (await response.json()) as { deploy: string };
  const state = await pollUntil(
    async () => {
      const { body } = await getJson(`${serve.url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? (body.state as string) : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.equal(state, 'succeeded', serve.output());
}

test('SIGHUP reloads duet.yml into a running duet serve: the next webhook deploys with the new env; a broken file or a restart-only change is refused and serve goes on', async (t) => {
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const setup = await setupDuet(t, {
    app: { env: '{ MSG: a }', deploy_on: '{ tags: ["v*"] }' },
    top: { server: `{ listen: "127.0.0.1:${port}" }`, github: `{ api_url: "${github.url}" }` },
  });
  const serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });
  await deployTag(serve, setup, 'v1');
  assert.equal((await setup.get('/env/MSG')).body, 'a');

  await editConfig(setup, (text) => text.replace('env: { MSG: a }', 'env: { MSG: b }'));
  const doctorLine = async () => (await setup.duet(['doctor'])).stdout.split('\n').find((line) => line.includes(' duet serve: ')) ?? '(none)';
  assert.match(await doctorLine(), /^✗ duet serve: pid \d+ runs an older .*duet\.yml/, 'doctor tells the edit did not reach duet serve');
  await hangUp(serve, /duet\.yml reloaded/);
  assert.match(await doctorLine(), /^✓ duet serve: pid \d+ runs this /);
  assert.match(serve.output(), /"changed":\["cafeteria"\]/);
  await deployTag(serve, setup, 'v2');
  assert.equal((await setup.get('/env/MSG')).body, 'b', 'the deploy after the reload has the new env');

  await editConfig(setup, (text) => `${text}this is: [not yaml\n`);
  await hangUp(serve, /duet\.yml NOT reloaded: .*goes on with the config it had/);
  await editConfig(setup, (text) => text.replace(/this is: \[not yaml\n$/, '').replace(`127.0.0.1:${port}`, `127.0.0.1:${port + 1}`));
  await hangUp(serve, /duet\.yml NOT reloaded: server changed, which takes a restart/);
  assert.equal((await getJson(`${serve.url}/healthz`)).status, 200, 'duet serve still answers');
  assert.equal(serve.child.exitCode, null, 'SIGHUP did not stop it');
});
