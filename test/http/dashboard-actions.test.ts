import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { makeSession } from '../../src/http/auth.js';
import { buildScene } from './dashboard-fixture.js';
import { startHarness, TOKEN, type Harness } from './http-harness.js';

/**
 * The dashboard's buttons over the recording queue: what a POST must carry to reach the queue, and
 * what the pages of the buttons are. The browser test (dashboard-actions-browser.test.ts) clicks
 * them on a real duet serve.
 */

async function signIn(base: string): Promise<string> {
  const answer = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: TOKEN }).toString(),
  });
  assert.equal(answer.status, 303);
  return answer.headers.get('set-cookie')!.split(';')[0]!;
}

const post = (h: Harness, path: string, fields: Record<string, string>, cookie?: string) =>
  fetch(`${h.base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
    body: new URLSearchParams(fields).toString(),
  });

/** The hidden CSRF field of a confirmation page. */
function csrfOf(page: string): string {
  const match = /<input type="hidden" name="csrf" value="([\w-]+)">/.exec(page);
  assert.ok(match, `no CSRF field in ${page}`);
  return match[1]!;
}

/** No script may run: no script-src that allows anything, default-src 'none'. */
function assertNoScript(csp: string | null, where: string): void {
  assert.ok(csp, `${where}: a Content-Security-Policy`);
  assert.match(csp, /default-src 'none'/, where);
  const scriptSrc = /script-src(?:-elem|-attr)?\s+([^;]*)/.exec(csp);
  assert.ok(!scriptSrc || scriptSrc[1]!.trim() === "'none'", `${where}: ${csp}`);
}

test('a redeploy or rollback POST without the session, without or with a wrong CSRF token is refused 403 and reaches no queue', async (t) => {
  const h = await startHarness(t);
  await buildScene(t, h);
  const cookie = await signIn(h.base);
  // Another session: sign-ins within one second get the same cookie.
  const other = `duet_session=${makeSession(TOKEN, Date.now() - 5000)}`;
  const confirm = await fetch(`${h.base}/apps/cafeteria/actions/redeploy?ref=main`, { headers: { cookie } });
  assert.equal(confirm.status, 200);
  const csrf = csrfOf(await confirm.text());
  const otherCsrf = csrfOf(await (await fetch(`${h.base}/apps/cafeteria/actions/redeploy`, { headers: { cookie: other } })).text());
  assert.notEqual(csrf, otherCsrf, 'one token per session');

  const from = '3f9c1e7';
  const refusals: Array<[string, Record<string, string>, string | undefined]> = [
    ['/apps/cafeteria/actions/redeploy', { ref: 'main' }, cookie],
    ['/apps/cafeteria/actions/redeploy', { ref: 'main', csrf: 'x'.repeat(43) }, cookie],
    ['/apps/cafeteria/actions/redeploy', { ref: 'main', csrf: '' }, cookie],
    ['/apps/cafeteria/actions/redeploy', { ref: 'main', csrf: otherCsrf }, cookie],
    ['/apps/cafeteria/actions/redeploy', { ref: 'main', csrf }, undefined],
    ['/apps/cafeteria/actions/rollback', { from }, cookie],
    ['/apps/cafeteria/actions/rollback', { from, csrf: csrf.slice(1) }, cookie],
  ];
  for (const [path, fields, withCookie] of refusals) {
    const answer = await post(h, path, fields, withCookie);
    assert.equal(answer.status, 403, `${path} ${JSON.stringify(fields)} cookie: ${withCookie !== undefined}`);
    assert.match(await answer.text(), /nothing was done/);
  }
  const crossSite = await fetch(`${h.base}/apps/cafeteria/actions/redeploy`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, origin: 'https://evil.example' },
    body: new URLSearchParams({ ref: 'main', csrf }).toString(),
  });
  assert.equal(crossSite.status, 403, 'posted from another site');
  assert.equal(h.queue.submitted.length, 0, 'nothing reached the queue');

  const done = await post(h, '/apps/cafeteria/actions/redeploy', { ref: 'main', csrf }, cookie);
  assert.equal(done.status, 303);
  const id = [...h.queue.records.keys()].at(-1)!;
  assert.equal(done.headers.get('location'), `/deploys/${id}/view`);
  const asked = h.queue.submitted[0]!;
  assert.deepEqual(
    { app: asked.app, kind: asked.kind, ref: asked.ref, source: asked.source },
    { app: 'cafeteria', kind: 'deploy', ref: 'main', source: 'manual' },
  );
  assert.match(asked.requestedBy ?? '', /^dashboard session [0-9a-f]{8} \(127\.0\.0\.1\)$/);
  const extra = await post(h, '/apps/cafeteria/actions/redeploy', { ref: 'main', csrf, breaking: 'true' }, cookie);
  assert.equal(extra.status, 400, 'a field the form does not have');
  assert.equal(h.queue.submitted.length, 1);
});

test('signed in, each app has Redeploy and Roll back; their confirmation pages say what happens, under the same CSP without script', async (t) => {
  const h = await startHarness(t);
  await buildScene(t, h);
  const cookie = await signIn(h.base);
  const index = await fetch(`${h.base}/`, { headers: { cookie } });
  assertNoScript(index.headers.get('content-security-policy'), 'the index');
  const page = await index.text();
  assert.match(
    page,
    /<form class="inline" method="get" action="\/apps\/cafeteria\/actions\/redeploy"><input type="hidden" name="ref" value="refs\/tags\/v2.0.0">/,
  );
  assert.match(
    page,
    /<form class="inline" method="get" action="\/apps\/cafeteria\/actions\/rollback"><input type="hidden" name="from" value="3f9c1e7a5b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e">/,
  );
  assert.match(page, /action="\/apps\/menu\/actions\/redeploy"/, 'an app never deployed can be deployed');
  assert.doesNotMatch(page, /action="\/apps\/menu\/actions\/rollback"/, 'but has nothing to roll back to');

  const rollback = await fetch(`${h.base}/apps/cafeteria/actions/rollback?from=3f9c1e7`, { headers: { cookie } });
  assert.equal(rollback.status, 200);
  assertNoScript(rollback.headers.get('content-security-policy'), 'the rollback confirmation');
  const text = await rollback.text();
  assert.match(text, /<dt>live now<\/dt><dd>blue <code>3f9c1e7<\/code> <code>refs\/tags\/v2.0.0<\/code><\/dd>/);
  assert.match(text, /<dt>becomes<\/dt><dd>green <code>9a8b7c6<\/code> <code>refs\/tags\/v1.9.3<\/code><\/dd>/);
  assert.match(
    text,
    /<form method="post" action="\/apps\/cafeteria\/actions\/rollback"><input type="hidden" name="csrf" value="[\w-]+"><input type="hidden" name="from" value="3f9c1e7">/,
  );
  for (const body of [page, text]) {
    assert.doesNotMatch(body, /<script|\son[a-z]+=/i, 'no script, no inline handler');
  }

  const redeploy = await fetch(`${h.base}/apps/cafeteria/actions/redeploy?ref=refs/tags/v2.0.0`, { headers: { cookie } });
  assertNoScript(redeploy.headers.get('content-security-policy'), 'the redeploy confirmation');
  const redeployText = await redeploy.text();
  assert.match(redeployText, /<dt>live now<\/dt><dd>blue <code>3f9c1e7<\/code>/);
  assert.match(redeployText, /<dt>deploys<\/dt><dd><code>refs\/tags\/v2.0.0<\/code>, resolved again when it runs/);
  assert.match(redeployText, /cannot be resolved now/, 'the scene has no repository');

  // A page offering to undo a commit that is no longer live says so at once.
  const stale = await fetch(`${h.base}/apps/cafeteria/actions/rollback?from=9a8b7c6`, { headers: { cookie } });
  assert.equal(stale.status, 409);
  assert.match(await stale.text(), /Something else changed it first[\s\S]*from <code>9a8b7c6<\/code>, but <code>3f9c1e7<\/code> is live on blue now/);
  const noApp = await fetch(`${h.base}/apps/nope/actions/redeploy`, { headers: { cookie } });
  assert.equal(noApp.status, 404);
  assert.equal((await fetch(`${h.base}/apps/cafeteria/actions/rollback?from=zz`, { headers: { cookie } })).status, 400);
});

test('without a session there are no buttons, and a confirmation page sends to the sign-in, on a public dashboard too', async (t) => {
  const h = await startHarness(t, { publicDashboard: true });
  const page = await (await fetch(`${h.base}/`)).text();
  assert.match(page, /cafeteria/);
  assert.doesNotMatch(page, /actions\/(redeploy|rollback)/);
  const confirm = await fetch(`${h.base}/apps/cafeteria/actions/redeploy`, { redirect: 'manual' });
  assert.equal(confirm.status, 303);
  assert.equal(confirm.headers.get('location'), '/login');
  assert.equal((await post(h, '/apps/cafeteria/actions/redeploy', { csrf: 'x' })).status, 403);
  const cookie = await signIn(h.base);
  assert.match(await (await fetch(`${h.base}/`, { headers: { cookie } })).text(), /actions\/redeploy/, 'a signed-in session gets them');
  assert.deepEqual(h.queue.submitted, []);
});
