import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { startGitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { getJson, postWebhook, startServe, tagPush } from '../support/serve.js';
import { tempDir } from '../support/tmp.js';

const REPO = 'inu-appcenter/cafeteria-server';
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

test('duet serve: a deploy switched back by its watch is told once per target, while the webhook receiver is down and across a restart', async (t) => {
  const port = await freePort();
  const hookPort = await freePort();
  const chat = await startGitHubServer(t);
  const files = await tempDir(t, 'duet-notify-files');
  const file = async (name: string, text: string): Promise<string> => {
    await writeFile(join(files, name), text, { mode: 0o600 });
    return join(files, name);
  };
  const hookUrl = await file('hook-url', `http://127.0.0.1:${hookPort}/duet\n`);
  const secret = await file('hook-secret', `${SECRET}\n`);
  const chatUrl = await file('chat-url', `${chat.url}/services/T0/B0/x\n`);
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterMs":600}' } },
    app: { deploy_on: '{ tags: ["v*"] }', health: '{ path: /health, timeout_s: 10, watch_s: 3 }' },
    top: {
      server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }`,
      notify: `[{ format: webhook, url_file: ${hookUrl}, secret_file: ${secret} }, { format: slack, url_file: ${chatUrl}, on: [succeeded, failed, errored, switched_back] }]`,
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const stateDir = setup.config.stateDir;

  const first = await startServe(t, setup.configPath, port);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const response = await postWebhook(first.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-v2');
  const { deploy: id } = (await response.json()) as { deploy: string };
  // The receiver refuses every connection: the deploy runs and ends as it would without it.
  const record = await pollUntil(
    async () => {
      const { body } = await getJson(`${first.url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? body : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.equal(record?.state, 'failed');
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  await chat.waitFor((requests) => requests.length >= 1, 10_000);
  await first.stop();
  assert.match(first.output(), /notify: not delivered \(ECONNREFUSED\); retrying/);

  // Up again, first with a 503 asking for a second's patience, then taking it.
  const hook = await startGitHubServer(t, { port: hookPort });
  hook.respond('POST', /^\/duet$/, { status: 503, headers: { 'retry-after': '1' } });
  const second = await startServe(t, setup.configPath, port);
  await hook.waitFor((requests) => requests.length >= 2, 20_000);
  const outbox = join(stateDir, 'notify-outbox.ndjson');
  await pollUntil(async () => ((await readFile(outbox, 'utf8')) === '' ? true : undefined), { timeoutMs: 10_000 });
  await second.stop();

  assert.equal(hook.requests.length, 2, 'the 503, then the one delivery');
  const delivered = hook.requests[1]!;
  const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => [name, String(delivered.headers[name])]));
  const event = new Webhook(SECRET).verify(JSON.stringify(delivered.body), headers) as any;
  assert.equal(event.type, 'deploy.switched_back');
  assert.equal(event.data.deploy_id, id);
  assert.equal(event.data.commit, v2);
  assert.equal(event.data.step, 'watch');
  assert.equal(event.data.url, `https://deploy.example.com/deploys/${id}`);
  assert.deepEqual(event.data.colors, { from: 'blue', to: 'green' });
  assert.ok(event.data.duration_ms > 0);

  // The other target, up all along: exactly one message for the deploy, not one per step or state.
  assert.equal(chat.requests.length, 1);
  assert.match(
    (chat.requests[0]!.body as { text: string }).text,
    new RegExp(`^cafeteria: SWITCHED BACK after the watch \\(v2 @ ${v2.slice(0, 7)}\\): watch failed: .* https://deploy\\.example\\.com/deploys/${id}$`),
  );
});
