import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { refNameProblem, shownRef } from '../../src/instance/git-ref.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, examples, postWebhook, startServe, tagPush } from '../support/serve.js';

/**
 * Refs whose characters change how they are displayed: git accepts them, duet must not. The
 * audit's cases: `v1\u202e3.2.1` deployed and showed as "v11.2.3"; `v1.2.3\u200b` showed as v1.2.3.
 */

const REPO = 'inu-appcenter/cafeteria-server';
/** A control, format or separator character as such (a log's own line ends and tabs aside). */
const RAW = /(?![\n\r\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

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
  ['v1.2.3\u200b', 'U+200B'], // zero-width: shown as v1.2.3
  ['v1\u00ad2', 'U+00AD'],
  ['v1.2.3\u2060', 'U+2060'],
  ['v1.2.3\ufeff', 'U+FEFF'],
  ['v1.2.3\u{e0041}', 'U+E0041'], // a tag character, outside the BMP
];

test('bidi controls, zero-width and other format characters, separators and C0/C1 controls are refused, named by code point', () => {
  for (const [ref, code] of refused) {
    const problem = refNameProblem(ref);
    assert.ok(problem?.includes(code), `${JSON.stringify(ref)}: ${problem}`);
    assert.doesNotMatch(shownRef(ref), RAW, 'a message shows the ref escaped');
  }
  assert.equal(shownRef('v1\u202e3.2.1'), '"v1\\u202e3.2.1"');
  assert.equal(shownRef('v1\u{e0041}'), '"v1\\udb40\\udc41"', 'a character outside the BMP, as its surrogate pair');
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
  assert.match(pushReason, /U\+202E, an invisible or control character/);
  assert.doesNotMatch(pushReason, RAW);

  const release = examples('release').find((e) => e.action === 'published')!;
  release.repository.full_name = REPO;
  Object.assign(release.release, { tag_name: 'v2\u{e0033}', draft: false, prerelease: false }); // shows as v2
  const released = await postWebhook(serve.url, 'release', release, 'delivery-bidi-release');
  assert.equal(released.status, 202);
  assert.match(((await released.json()) as { ignored: string }).ignored, /U\+E0033/);

  const api = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref: 'v2\u200b' }), // shows as v2
  });
  assert.equal(api.status, 400);
  assert.match(((await api.json()) as { error: string }).error, /^invalid ref: it contains U\+200B/);

  const cli = await setup.duet(['deploy', '--ref', evil]);
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /invalid ref "v1\\u202e3\.2\.1": it contains U\+202E/);
  assert.doesNotMatch(cli.stderr, RAW);
  const soft = await setup.duet(['deploy', '--ref', 'v\u00ad2']); // soft hyphen: shows as v2
  assert.equal(soft.code, 2, soft.stderr);
  assert.match(soft.stderr, /invalid ref "v\\u00ad2": it contains U\+00AD/);

  // Triggers and runs alike are journaled: no journal, nothing queued and nothing ran.
  assert.equal(existsSync(setup.app.paths.journal), false, 'nothing was queued, nothing ran');
  assert.doesNotMatch(serve.output(), RAW, 'the log shows no raw control either');
  await serve.stop();
});
