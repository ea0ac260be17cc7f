import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { getJson, postWebhook, startServe, tagPush, WEBHOOK_SECRET } from '../support/serve.js';

const REPO = 'inu-appcenter/cafeteria-server';

async function serveSetup(t: import('node:test').TestContext, tags?: Record<string, Record<string, string>>) {
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const setup = await setupDuet(t, {
    tags,
    app: { deploy_on: '{ branches: [main], tags: ["v*"], releases: true }' },
    top: {
      server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }`,
      github: `{ api_url: "${github.url}" }`,
    },
  });
  return { setup, github, port };
}

async function waitForState(url: string, id: string, states: string[], timeoutMs = 60_000): Promise<any> {
  const record = await pollUntil(async () => {
    const { body } = await getJson(`${url}/deploys/${id}`);
    return states.includes(body?.state) ? body : undefined;
  }, { timeoutMs, maxIntervalMs: 200 });
  assert.ok(record, `deploy ${id} did not reach ${states.join('/')}`);
  return record;
}

function statusesFor(github: GitHubServer, sha: string): Array<{ state: string; description: string; context: string; target_url: string }> {
  return github.matching(new RegExp(`/repos/${REPO}/statuses/${sha}$`), 'POST').map((r) => r.body as any);
}

test('a signed tag push deploys through duet serve, and the commit gets pending -> success statuses', async (t) => {
  const { setup, github, port } = await serveSetup(t);
  const serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });
  const v2 = await setup.repo.revParse('v2^{commit}');

  const response = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-tag-v2');
  assert.equal(response.status, 202);
  const { deploy: id } = (await response.json()) as { deploy: string };
  const record = await waitForState(serve.url, id, ['succeeded', 'failed']);
  assert.equal(record.state, 'succeeded', JSON.stringify(record));
  assert.match((await setup.get('/')).body, /cafeteria v2/);

  await github.waitFor((requests) => requests.some((r) => (r.body as any)?.state === 'success'));
  const statuses = statusesFor(github, v2);
  assert.deepEqual(statuses.map((s) => s.state), ['pending', 'pending', 'success']);
  assert.equal(statuses[0]!.description, 'Queued');
  assert.match(statuses[1]!.description, /^Deploying .*v2 to blue$/);
  assert.match(statuses[2]!.description, /^Live on blue in \d+\.\ds$/);
  assert.ok(statuses.every((s) => s.context === 'duet/cafeteria' && s.target_url === `https://deploy.example.com/deploys/${id}`));
  assert.equal(github.requests[0]!.headers.authorization, 'token ghs_test');

  const redelivery = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-tag-v2');
  assert.equal(redelivery.status, 202);
  assert.deepEqual(await redelivery.json(), { deploy: id, duplicate: true });
  assert.ok(!serve.output().includes(WEBHOOK_SECRET), 'the secret never reaches the log');
});

test('duet serve killed mid-deploy resumes it after a restart; the CLI and the server share the lock', async (t) => {
  const { setup, github, port } = await serveSetup(t, {
    v1: {},
    v2: { VERSION: 'v2\n', 'behaviour.json': '{"startDelayMs":2500}' },
  });
  assert.equal((await setup.duet(['deploy', '--ref', 'v1'])).code, 0);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const env = { DUET_GITHUB_TOKEN: 'ghs_test' };
  const first = await startServe(t, setup.configPath, port, env);
  const response = await postWebhook(first.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-crash');
  const { deploy: id } = (await response.json()) as { deploy: string };
  await waitForState(first.url, id, ['running']);
  await pollUntil(async () => ((await getJson(`${first.url}/deploys/${id}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined), { timeoutMs: 30_000 });

  const cli = await setup.duet(['deploy', '--ref', 'v1', '--no-wait']);
  assert.equal(cli.code, 1, 'a shell deploy does not race the server');
  assert.match(cli.stderr, /locked by pid \d+ \(deploy refs\/tags\/v2/);

  await first.crash();
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'the crash left live traffic alone');

  const second = await startServe(t, setup.configPath, port, env);
  const record = await waitForState(second.url, id, ['succeeded', 'failed']);
  assert.equal(record.state, 'succeeded', JSON.stringify(record));
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  await github.waitFor((requests) => requests.some((r) => (r.body as any)?.state === 'success'));
  assert.equal(statusesFor(github, v2).at(-1)?.state, 'success', 'no status stays pending');
  await second.stop();
});
