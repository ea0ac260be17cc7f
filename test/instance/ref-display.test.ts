import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { refNameProblem, shownRef } from '../../src/instance/git-ref.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, examples, postWebhook, startServe, tagPush } from '../support/serve.js';

/**
 * Refs whose characters change how they are displayed: git accepts them, duet must not. The
 * audit's case `v1\u202e3.2.1` deployed and showed as "v11.2.3".
 */

const REPO = 'inu-appcenter/cafeteria-server';
const RAW = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\x80-\x9f]/;

const refused: Array<[string, string]> = [
  ['v1\u202e3.2.1', 'U+202E'], // right-to-left override
  ['v1\u202a2', 'U+202A'],
  ['v1\u202b2', 'U+202B'],
  ['v1\u202c2', 'U+202C'],
  ['v1\u202d2', 'U+202D'],
  ['v1\u20662', 'U+2066'], // isolates
  ['v1\u20672', 'U+2067'],
  ['v1\u20682', 'U+2068'],
  ['v1\u20692', 'U+2069'],
  ['v1\u200e2', 'U+200E'], // marks
  ['v1\u200f2', 'U+200F'],
  ['v1\u061c2', 'U+061C'],
  ['v1\u20282', 'U+2028'], // line and paragraph separators
  ['v1\u20292', 'U+2029'],
  ['v1\u00852', 'U+0085'], // C1: next line, CSI
  ['v1\u009b2', 'U+009B'],
  ['v1\x1b[2J', 'U+001B'],
];

test('bidi controls, separators and C0/C1 controls are refused, named by code point', () => {
  for (const [ref, code] of refused) {
    const problem = refNameProblem(ref);
    assert.ok(problem?.includes(code), `${JSON.stringify(ref)}: ${problem}`);
    assert.doesNotMatch(shownRef(ref), RAW, 'a message shows the ref escaped');
  }
  assert.equal(shownRef('v1\u202e3.2.1'), '"v1\\u202e3.2.1"');
  // What stays allowed: letters of any script, including right-to-left ones, without controls.
  for (const ref of ['v1.2.3', 'release/שלום', 'tag-مرحبا', 'café']) assert.equal(refNameProblem(ref), undefined, ref);
});

test('through a real duet serve: a webhook push and release, the API and the CLI all refuse the ref, and nothing is queued or run', async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, {
    app: { deploy_on: '{ branches: [main], tags: ["v*"], releases: true }' },
    top: { server: `{ listen: "127.0.0.1:${port}" }` },
  });
  const serve = await startServe(t, setup.configPath, port);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const evil = 'v1\u202e3.2.1';

  const push = await postWebhook(serve.url, 'push', tagPush(REPO, evil, v2), 'delivery-bidi-push');
  assert.equal(push.status, 202);
  const pushReason = ((await push.json()) as { ignored: string }).ignored;
  assert.match(pushReason, /U\+202E, which changes how the text around it is displayed/);
  assert.doesNotMatch(pushReason, RAW);

  const release = examples('release').find((e) => e.action === 'published')!;
  release.repository.full_name = REPO;
  Object.assign(release.release, { tag_name: 'v2\u20663', draft: false, prerelease: false });
  const released = await postWebhook(serve.url, 'release', release, 'delivery-bidi-release');
  assert.equal(released.status, 202);
  assert.match(((await released.json()) as { ignored: string }).ignored, /U\+2066/);

  const api = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref: 'v1\u20283' }),
  });
  assert.equal(api.status, 400);
  assert.match(((await api.json()) as { error: string }).error, /^invalid ref: it contains U\+2028/);

  const cli = await setup.duet(['deploy', '--ref', evil]);
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /invalid ref "v1\\u202e3\.2\.1": it contains U\+202E/);
  assert.doesNotMatch(cli.stderr, RAW);

  // Triggers and runs alike are journaled: no journal, nothing queued and nothing ran.
  assert.equal(existsSync(setup.app.paths.journal), false, 'nothing was queued, nothing ran');
  assert.doesNotMatch(serve.output(), RAW, 'the log shows no raw control either');
  await serve.stop();
});
