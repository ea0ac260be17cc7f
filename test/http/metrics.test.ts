import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, examples, getJson, postWebhook, sign, startServe, tagPush } from '../support/serve.js';

const REPO = 'inu-appcenter/cafeteria-server';

async function settled(url: string, id: string): Promise<string> {
  const state = await pollUntil(
    async () => {
      const { body } = await getJson(`${url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? (body.state as string) : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.ok(state, `deploy ${id} did not settle`);
  return state;
}

test('/metrics counts what a real duet serve received and deployed, not what a test fed it', async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, {
    app: { deploy_on: '{ branches: [main], tags: ["v*"] }' },
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashOnStart":true}' } },
    top: { server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }` },
  });
  const serve = await startServe(t, setup.configPath, port);
  const deployOf = async (tag: string, delivery: string): Promise<string> => {
    const response = await postWebhook(serve.url, 'push', tagPush(REPO, tag, await setup.repo.revParse(`${tag}^{commit}`)), delivery);
    assert.equal(response.status, 202);
    return ((await response.json()) as { deploy: string }).deploy;
  };

  assert.equal((await postWebhook(serve.url, 'ping', examples('ping')[0], 'd-ping')).status, 200);
  assert.equal(await settled(serve.url, await deployOf('v1', 'd-v1')), 'succeeded');
  assert.equal((await postWebhook(serve.url, 'push', tagPush(REPO, 'v1', await setup.repo.revParse('v1^{commit}')), 'd-v1')).status, 202, 'a redelivery');
  assert.equal(await settled(serve.url, await deployOf('v2', 'd-v2')), 'failed', 'v2 crashes on start');
  assert.equal((await postWebhook(serve.url, 'issues', examples('issues')[0], 'd-issues')).status, 202);
  const body = JSON.stringify(examples('ping')[0]);
  const forged = await fetch(`${serve.url}/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'ping',
      'x-github-delivery': 'd-forged',
      'x-hub-signature-256': sign(body, 'not the secret'),
    },
    body,
  });
  assert.equal(forged.status, 401);

  const text = await (await fetch(`${serve.url}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).text();
  const value = (series: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const deliveries = Object.fromEntries(
    ['pong', 'accepted', 'duplicate', 'ignored', 'unauthorized'].map((outcome) => [outcome, value(`duet_webhook_deliveries_total{outcome="${outcome}"}`)]),
  );
  assert.deepEqual(deliveries, { pong: 1, accepted: 2, duplicate: 1, ignored: 1, unauthorized: 1 }, text);
  assert.equal(value('duet_deploys_total{app="cafeteria",result="succeeded"}'), 1);
  assert.equal(value('duet_deploys_total{app="cafeteria",result="failed"}'), 1);
  assert.equal(value('duet_deploy_duration_seconds_count{app="cafeteria"}'), 2);
  assert.ok((value('duet_deploy_duration_seconds_sum{app="cafeteria"}') ?? 0) > 0, 'the deploys took time');
  assert.equal(value('duet_queue_depth{app="cafeteria"}'), 0);
});
