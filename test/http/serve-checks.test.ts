import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { startGitHubServer } from '../support/github-server.js';
import { journalEvents, journalRuns } from '../support/journal.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, examples, getJson, postWebhook, startServe } from '../support/serve.js';

const REPO = 'inu-appcenter/cafeteria-server';

async function stateOf(url: string, id: string, states: string[]): Promise<any> {
  const found = await pollUntil(
    async () => {
      const { body } = await getJson(`${url}/deploys/${id}`);
      return states.includes(body?.state) ? body : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.ok(found, `deploy ${id} did not reach ${states.join('/')}`);
  return found;
}

test('duet serve: a push waits for CI; a check_run webhook (signed, GitHub example) wakes it at once and it deploys; skip_checks does not wait', async (t) => {
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const setup = await setupDuet(t, {
    tags: { v1: {} },
    // poll_s 600: only the webhook can wake the wait within the test.
    app: { deploy_on: '{ branches: [main], wait_for_checks: { checks: [test], poll_s: 600, prepare_while_waiting: false } }' },
    top: { server: `{ listen: "127.0.0.1:${port}" }`, github: `{ api_url: "${github.url}" }` },
  });
  await setup.succeed(['deploy', '--ref', 'v1', '--skip-checks']);
  const sha = await setup.repo.commit({ VERSION: 'v2\n' });
  const checks = github.serveChecks(REPO, sha);
  checks.set({ checkRuns: [{ name: 'test', status: 'in_progress' }] });
  const serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });

  const push = examples('push').find((e) => String(e.ref).startsWith('refs/heads/'))!;
  Object.assign(push, { ref: 'refs/heads/main', after: sha, created: false, deleted: false, head_commit: { ...push.head_commit, id: sha } });
  push.repository.full_name = REPO;
  const { deploy: id } = (await (await postWebhook(serve.url, 'push', push, 'd-push')).json()) as { deploy: string };
  await stateOf(serve.url, id, ['waiting_for_checks']);
  await github.waitFor((requests) => requests.some((r) => (r.body as any)?.description === 'Waiting for CI: 0 of 1 checks done'), 15_000);

  checks.set({ checkRuns: [{ name: 'test', status: 'completed', conclusion: 'success' }] });
  const checkRun = examples('check_run').find((e) => e.action === 'completed')!;
  checkRun.check_run.head_sha = sha;
  checkRun.repository.full_name = REPO;
  const woke = await postWebhook(serve.url, 'check_run', checkRun, 'd-check-run');
  assert.equal(woke.status, 202);
  assert.deepEqual(await woke.json(), { checks: sha, waiting: 1 });
  const done = await stateOf(serve.url, id, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'succeeded', done.summary);
  assert.match((await setup.get('/')).body, /cafeteria v2/);

  // {"skip_checks": true}: deployed at once, though CI of the new commit never reports; journaled as such.
  const unchecked = await setup.repo.commit({ VERSION: 'v3\n' });
  const asked = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ skip_checks: true }),
  });
  assert.equal(asked.status, 202);
  const skipped = ((await asked.json()) as { deploy: string }).deploy;
  assert.equal((await stateOf(serve.url, skipped, ['succeeded', 'failed', 'errored'])).state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v3/);
  const events = await journalEvents(setup.app.paths.journal);
  const accepted = events.find((e) => e.id === skipped && e.type === 'accepted');
  assert.equal(accepted?.type === 'accepted' && accepted.trigger.skipChecks, true);
  const begin = events.find((e) => e.id === skipped && e.type === 'begin');
  assert.equal(begin?.type === 'begin' && begin.reason, 'CI not waited for (skip_checks)');
  assert.equal((await journalRuns(setup.app.paths.journal)).at(-1)?.resolvedSha, unchecked);
  await serve.stop();
});
