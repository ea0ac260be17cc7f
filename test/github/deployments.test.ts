import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { rig, SHA, STATUS_PATH, trigger } from './helpers.js';

const DEPLOYMENTS = /^\/repos\/inu-appcenter\/cafeteria-server\/deployments$/;
const DEPLOYMENT_STATUSES = /^\/repos\/inu-appcenter\/cafeteria-server\/deployments\/(\d+)\/statuses$/;
const running = { state: 'running', startedAt: '2024-05-01T10:00:01.000Z', color: 'green' } as const;

test('with deployments on, start creates a Deployment and the outcome closes it', async (t) => {
  const { github, reporter, outboxPath } = await rig(t, { deployments: true, publicUrl: 'https://duet.example.com' });
  await reporter.resume();
  reporter.queued(trigger());
  reporter.started(trigger(running), 'green');
  // The outcome comes once the deployment is under way, as a deploy's does, seconds later.
  await github.waitFor((requests) => requests.filter((request) => DEPLOYMENT_STATUSES.test(request.path)).length === 1);
  reporter.finished(trigger({ ...running, state: 'succeeded', summary: 'Live on green in 8.2s' }));
  await reporter.flush();

  const created = github.matching(DEPLOYMENTS, 'POST');
  assert.equal(created.length, 1);
  assert.deepEqual(created[0]!.body, {
    ref: SHA,
    environment: 'production',
    auto_merge: false,
    required_contexts: [],
    description: 'Deploying v2 to green',
    payload: { trigger: 'd-0001' },
  });
  const statuses = github.matching(DEPLOYMENT_STATUSES, 'POST');
  const [deploymentId] = new Set(statuses.map((request) => DEPLOYMENT_STATUSES.exec(request.path)![1]));
  assert.equal(statuses.length, 2);
  assert.ok(github.requests.indexOf(created[0]!) < github.requests.indexOf(statuses[0]!), 'created before its statuses');
  assert.deepEqual(
    statuses.map((request) => request.body),
    [
      { state: 'in_progress', description: 'Deploying v2 to green', environment: 'production', log_url: 'https://duet.example.com/deploys/d-0001' },
      { state: 'success', description: 'Live on green in 8.2s', environment: 'production', log_url: 'https://duet.example.com/deploys/d-0001' },
    ],
  );
  assert.ok(deploymentId, 'both statuses went to the one deployment');
  const commitStatuses = github.matching(STATUS_PATH);
  assert.ok(commitStatuses.length >= 2, 'commit statuses are sent as well');
  assert.equal((commitStatuses.at(-1)!.body as { state: string }).state, 'success');
  assert.equal(await readFile(outboxPath, 'utf8'), '', 'a closed deployment leaves nothing to remember');
});

test('a trigger superseded while queued creates no Deployment', async (t) => {
  const { github, reporter } = await rig(t, { deployments: true });
  reporter.queued(trigger());
  reporter.finished(trigger({ state: 'superseded', supersededBy: 'd-0002' }));
  await reporter.flush();
  assert.equal(github.matching(/deployments/).length, 0);
  assert.equal(github.matching(STATUS_PATH).length, 2);
});

test('a failed deploy gives the Deployment a failure status; creating it is retried after a 500', async (t) => {
  const { github, reporter } = await rig(t, { deployments: true });
  github.respond('POST', DEPLOYMENTS, 500);
  reporter.started(trigger(running), 'green');
  reporter.finished(trigger({ ...running, state: 'failed', summary: 'build failed: exit code 1' }));
  await reporter.flush(5000);
  assert.equal(github.matching(DEPLOYMENTS).length, 2, 'the 500 and the retry');
  assert.deepEqual(
    github.matching(DEPLOYMENT_STATUSES).map((request) => (request.body as { state: string }).state),
    ['failure'],
    'after a failure only the newest state is worth sending',
  );
});

test('a restart between start and finish closes the same Deployment', async (t) => {
  const { github, reporter, restart, outboxPath } = await rig(t, { deployments: true });
  await reporter.resume();
  reporter.started(trigger(running), 'green');
  await reporter.flush();
  const outbox = (await readFile(outboxPath, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  assert.equal(outbox.length, 1, 'compacted to the one open deployment');
  assert.equal(outbox[0].op, 'deployment');
  await reporter.close();

  const next = restart();
  await next.resume();
  next.finished(trigger({ ...running, state: 'failed', summary: 'interrupted by a restart' }));
  await next.flush();
  assert.equal(github.matching(DEPLOYMENTS).length, 1, 'no second deployment');
  const statuses = github.matching(DEPLOYMENT_STATUSES);
  assert.deepEqual(
    statuses.map((request) => [DEPLOYMENT_STATUSES.exec(request.path)![1], (request.body as { state: string }).state]),
    [
      [String(outbox[0].deploymentId), 'in_progress'],
      [String(outbox[0].deploymentId), 'failure'],
    ],
  );
  assert.equal(await readFile(outboxPath, 'utf8'), '');
});
