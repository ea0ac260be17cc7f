import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { examples, getJson, postWebhook, sign, startServe, tagPush, WEBHOOK_SECRET } from '../support/serve.js';
import { existsSync } from 'node:fs';
import { isTriggerEvent } from '../../src/pipeline/trigger.js';
import { journalEvents, journalRuns } from '../support/journal.js';

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
  const record = await pollUntil(
    async () => {
      const { body } = await getJson(`${url}/deploys/${id}`);
      return states.includes(body?.state) ? body : undefined;
    },
    { timeoutMs, maxIntervalMs: 200 },
  );
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
  assert.deepEqual(
    statuses.map((s) => s.state),
    ['pending', 'pending', 'success'],
  );
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
  await setup.succeed(['deploy', '--ref', 'v1']);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const env = { DUET_GITHUB_TOKEN: 'ghs_test' };
  const first = await startServe(t, setup.configPath, port, env);
  const response = await postWebhook(first.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-crash');
  const { deploy: id } = (await response.json()) as { deploy: string };
  await waitForState(first.url, id, ['running']);
  await pollUntil(async () => ((await getJson(`${first.url}/deploys/${id}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined), {
    timeoutMs: 30_000,
  });

  const cli = await setup.duet(['deploy', '--ref', 'v1', '--no-wait']);
  assert.equal(cli.code, 1, 'a shell deploy does not race the server');
  assert.match(cli.stderr, /locked by pid \d+ \(deploy refs\/tags\/v2/);

  await first.crash();
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'the crash left live traffic alone');

  const second = await startServe(t, setup.configPath, port, env);
  const record = await waitForState(second.url, id, ['succeeded', 'failed']);
  assert.equal(record.state, 'succeeded', JSON.stringify(record));
  assert.equal(record.outcome, 'success', 'the resumed deploy is one record, never closed as interrupted on the way');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  await github.waitFor((requests) => requests.some((r) => (r.body as any)?.state === 'success'));
  assert.equal(statusesFor(github, v2).at(-1)?.state, 'success', 'no status stays pending');
  await second.stop();
});

test('GitHub example payloads through a real duet serve: what deploys, what is ignored, what is refused', async (t) => {
  const { setup, port } = await serveSetup(t);
  const serve = await startServe(t, setup.configPath, port);
  const post = (event: string, payload: unknown, delivery: string) => postWebhook(serve.url, event, payload, delivery);
  const triggers = async () => (await journalEvents(setup.app.paths.journal)).filter(isTriggerEvent);

  assert.equal((await post('ping', examples('ping')[0], 'd-ping')).status, 200);
  for (const event of ['issues', 'pull_request', 'workflow_run']) {
    const response = await post(event, examples(event)[0], `d-${event.replace('_', '-')}`);
    assert.equal(response.status, 202, event);
    assert.ok(((await response.json()) as { ignored?: string }).ignored, event);
  }
  const draft = examples('release').find((e) => e.action === 'created')!;
  draft.repository.full_name = REPO;
  draft.release.draft = true;
  assert.equal((await post('release', draft, 'd-draft')).status, 202);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const hostile = tagPush(REPO, 'v2', v2);
  hostile.ref = 'refs/tags/v2;touch${IFS}/tmp/pwned';
  const refusedRef = await post('push', hostile, 'd-hostile');
  assert.equal(refusedRef.status, 202);
  assert.match(((await refusedRef.json()) as { ignored: string }).ignored, /v2;touch/);
  assert.equal((await post('push', tagPush('someone/else', 'v2', v2), 'd-stranger')).status, 202);

  const body = JSON.stringify(tagPush(REPO, 'v2', v2));
  const refused = [
    await fetch(`${serve.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': sign(body, 'wrong secret') },
      body,
    }),
    await fetch(`${serve.url}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, body }),
    await fetch(`${serve.url}/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-github-event': 'push',
        'x-hub-signature-256': sign(`payload=${encodeURIComponent(body)}`),
      },
      body: `payload=${encodeURIComponent(body)}`,
    }),
    await fetch(`${serve.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': sign('{"ref": ') },
      body: '{"ref": ',
    }),
  ];
  assert.deepEqual(
    refused.map((r) => r.status),
    [401, 401, 415, 400],
  );
  assert.deepEqual(await triggers(), [], 'nothing was queued by any of the above');
  assert.equal(existsSync(setup.app.paths.journal), false, 'nothing ran');

  // A push to main (GitHub's branch example, turned from "created" into an update).
  const v3 = await setup.repo.commit({ VERSION: 'v3\n' }, 'v3');
  const branch = examples('push').find((e) => String(e.ref).startsWith('refs/heads/'))!;
  Object.assign(branch, { ref: 'refs/heads/main', before: v2, after: v3, created: false, deleted: false, head_commit: { ...branch.head_commit, id: v3 } });
  branch.repository.full_name = REPO;
  const pushed = (await (await post('push', branch, 'd-main')).json()) as { deploy: string };
  assert.equal((await waitForState(serve.url, pushed.deploy, ['succeeded', 'failed'])).state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v3/);

  // Publishing a release fires the release and the push of its tag: one deploy.
  const release = examples('release').find((e) => e.action === 'published')!;
  release.repository.full_name = REPO;
  Object.assign(release.release, { tag_name: 'v2', draft: false, prerelease: false, target_commitish: 'not-used' });
  const fromRelease = (await (await post('release', release, 'd-release')).json()) as { deploy: string };
  const fromTag = (await (await post('push', tagPush(REPO, 'v2', v2), 'd-tag')).json()) as { deploy: string; duplicate?: boolean };
  assert.deepEqual(fromTag, { deploy: fromRelease.deploy, duplicate: true });
  assert.equal((await waitForState(serve.url, fromRelease.deploy, ['succeeded', 'failed'])).state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal((await journalRuns(setup.app.paths.journal)).length, 2, 'two deploys in all');
});

test('a pushed version that crashes after going live: switched back, and GitHub hears failure, on the status and the Deployment', async (t) => {
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashAfterMs":600}' } },
    app: { deploy_on: '{ branches: [main], tags: ["v*"] }', health: '{ path: /health, timeout_s: 10, watch_s: 3 }' },
    top: {
      server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }`,
      github: `{ api_url: "${github.url}", deployments: true }`,
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });
  const v2 = await setup.repo.revParse('v2^{commit}');
  const response = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-crashing-v2');
  const { deploy: id } = (await response.json()) as { deploy: string };
  const record = await waitForState(serve.url, id, ['succeeded', 'failed']);
  assert.equal(record.state, 'failed');
  assert.equal(record.failedStep, 'watch');
  assert.match((await setup.get('/')).body, /cafeteria v1/);

  await github.waitFor((requests) => requests.some((r) => (r.body as any)?.state === 'failure' && /\/deployments\/\d+\/statuses$/.test(r.path)));
  const last = statusesFor(github, v2).at(-1)!;
  assert.equal(last.state, 'failure');
  assert.match(last.description, /^watch failed: green exited with code 1/);
  await serve.stop();
});

test('a signed push replayed under a new delivery id is the same delivery, and a push naming an old commit deploys the branch tip: main never rolls back', async (t) => {
  const { setup, port } = await serveSetup(t);
  await setup.succeed(['deploy', '--ref', 'v1']);
  const serve = await startServe(t, setup.configPath, port);
  const pushOf = (before: string, after: string) => {
    const push = examples('push').find((e) => String(e.ref).startsWith('refs/heads/'))!;
    Object.assign(push, { ref: 'refs/heads/main', before, after, created: false, deleted: false, head_commit: { ...push.head_commit, id: after } });
    push.repository.full_name = REPO;
    return push;
  };
  const a = await setup.repo.commit({ VERSION: 'vA\n' }, 'A');
  const first = (await (await postWebhook(serve.url, 'push', pushOf(a, a), 'delivery-a')).json()) as { deploy: string };
  assert.equal((await waitForState(serve.url, first.deploy, ['succeeded', 'failed'])).state, 'succeeded');
  const b = await setup.repo.commit({ VERSION: 'vB\n' }, 'B');
  const second = (await (await postWebhook(serve.url, 'push', pushOf(a, b), 'delivery-b')).json()) as { deploy: string };
  assert.equal((await waitForState(serve.url, second.deploy, ['succeeded', 'failed'])).state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria vB/);

  // The first push's body, signed as GitHub signed it, under a delivery id never seen: the same delivery.
  const replay = await postWebhook(serve.url, 'push', pushOf(a, a), 'delivery-a-again');
  assert.equal(replay.status, 202);
  assert.deepEqual(await replay.json(), { deploy: first.deploy, duplicate: true });

  // A signed push that names A once main is at B (another body: deliveries out of order, or one
  // replayed after its digest was compacted away): its turn deploys the tip.
  const late = await postWebhook(serve.url, 'push', { ...pushOf(a, a), compare: 'https://github.com/late' }, 'delivery-a-late');
  const lateId = ((await late.json()) as { deploy: string }).deploy;
  assert.notEqual(lateId, first.deploy);
  await waitForState(serve.url, lateId, ['succeeded', 'failed']);
  assert.match((await setup.get('/')).body, /cafeteria vB/, 'main is still at B');
  const last = (await journalRuns(setup.app.paths.journal)).at(-1)!;
  assert.equal(last.resolvedSha, b, 'the late push deployed (found live) the tip, not A');
});
