import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { decideEvent } from '../../src/http/events.js';
import { examples } from '../support/serve.js';

// GitHub's own example payloads of the four events that tell of a commit's CI.

const gated = parseConfig(
  'state_dir: /tmp/duet-checks-test\napps:\n  web: { repo: Acme/Web, clone_url: /nonexistent.git, deploy_on: { branches: [main], wait_for_checks: {} } }\n',
  'test.yml',
);
const plain = parseConfig('state_dir: /tmp/duet-checks-test\napps:\n  web: { repo: acme/web, clone_url: /nonexistent.git }\n', 'test.yml');

const SHAS: Record<string, (payload: Record<string, any>) => string> = {
  check_run: (p) => p.check_run.head_sha,
  check_suite: (p) => p.check_suite.head_sha,
  workflow_run: (p) => p.workflow_run.head_sha,
  status: (p) => p.sha,
};

test('check_run, check_suite, workflow_run and status wake the wait for their commit, in a repo with a gated app', () => {
  for (const [event, shaOf] of Object.entries(SHAS)) {
    for (const payload of examples(event)) {
      payload.repository.full_name = 'acme/web';
      assert.deepEqual(decideEvent(gated, event, payload), { wake: { repo: 'acme/web', sha: shaOf(payload).toLowerCase() } }, event);
      const ignored = decideEvent(plain, event, payload);
      assert.ok('ignored' in ignored && /no app of "acme\/web" has deploy_on.wait_for_checks/.test(ignored.ignored), event);
    }
  }
});

test("a status event of duet's own context wakes nothing: it is duet's own news, not CI's", () => {
  const payload = examples('status')[0]!;
  Object.assign(payload, { context: 'duet/web' });
  payload.repository.full_name = 'acme/web';
  assert.deepEqual(decideEvent(gated, 'status', payload), { ignored: "duet's own commit status" });
});

test('a CI event without the commit is refused as a bad payload, not guessed at', () => {
  const payload = examples('check_run')[0]!;
  delete payload.check_run.head_sha;
  assert.throws(() => decideEvent(gated, 'check_run', payload), /check_run payload: check_run.head_sha/);
});
