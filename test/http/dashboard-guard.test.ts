import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, startServe } from '../support/serve.js';
import { SignInLimiter } from '../../src/http/sign-in-guard.js';
import { startHarness, TOKEN } from './http-harness.js';

/** The sign-in form as a browser posts it; `from` becomes X-Forwarded-For, as nginx sends it. */
const signIn = (base: string, token: string, from = '198.51.100.7', headers: Record<string, string> = {}) =>
  fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from, ...headers },
    body: new URLSearchParams({ token }).toString(),
  });

test('with an https public_url the session cookie is Secure without X-Forwarded-Proto (the README snippet sent none)', async (t) => {
  const h = await startHarness(t, { publicUrl: 'https://deploy.example.com' });
  const answer = await signIn(h.base, TOKEN);
  assert.equal(answer.status, 303);
  assert.match(answer.headers.get('set-cookie')!, /; HttpOnly; SameSite=Strict; Secure$/);
  const cookie = answer.headers.get('set-cookie')!.split(';')[0]!;
  const out = await fetch(`${h.base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie } });
  assert.match(out.headers.get('set-cookie')!, /Max-Age=0; .*; Secure$/);
});

test('sign-in: 300 guesses from one client get 429 + Retry-After after 6 tries; other clients and, after the wait, the right token still sign in', async (t) => {
  const at = Date.now();
  // The limiter's clock stands still: on a loaded machine 300 requests may outlast the first waits,
  // which would let a further guess through each time one ends.
  const h = await startHarness(t, { signInLimiter: new SignInLimiter(undefined, () => at) });
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 300; i++) {
    const answer = await signIn(h.base, `guess-${i}`);
    statuses.push(answer.status);
    if (answer.status === 429) retryAfter ??= answer.headers.get('retry-after');
    await answer.arrayBuffer();
  }
  const wrong = statuses.filter((s) => s === 401).length;
  assert.equal(wrong, 6, `${wrong} guesses were checked`);
  assert.equal(statuses.filter((s) => s === 429).length, 300 - wrong);
  assert.equal(retryAfter, '1');
  // Locked out means the right token too, until the wait is over; another address is not.
  assert.equal((await signIn(h.base, TOKEN)).status, 429);
  assert.equal((await signIn(h.base, TOKEN, '198.51.100.8')).status, 303);
});

test('sign-in: the backoff ends, and a right token clears it', async (t) => {
  // The test moves the limiter's clock: a slow request can neither end the wait early nor miss it.
  let now = Date.now();
  const h = await startHarness(t, { signInLimiter: new SignInLimiter(undefined, () => now) });
  for (let i = 0; i < 6; i++) assert.equal((await signIn(h.base, 'guess', '203.0.113.5')).status, 401);
  const blocked = await signIn(h.base, TOKEN, '203.0.113.5');
  assert.equal(blocked.status, 429);
  assert.equal(blocked.headers.get('retry-after'), '1');
  now += 999;
  assert.equal((await signIn(h.base, TOKEN, '203.0.113.5')).status, 429, 'still waiting');
  now += 1;
  assert.equal((await signIn(h.base, TOKEN, '203.0.113.5')).status, 303, 'the wait is over');
  assert.equal((await signIn(h.base, 'guess', '203.0.113.5')).status, 401, 'counting starts over');
});

test('sign-in: past 30 wrong tokens a minute from rotating addresses, the right token still signs in; a wrong one makes its address wait at once', async (t) => {
  const at = Date.now();
  // One moment for the whole test: no window of the limiter can pass while a loaded machine is slow.
  const h = await startHarness(t, { signInLimiter: new SignInLimiter(undefined, () => at) });
  for (let i = 0; i < 30; i++) assert.equal((await signIn(h.base, 'guess', `192.0.2.${i + 1}`)).status, 401);
  assert.equal((await signIn(h.base, TOKEN, '198.51.100.20')).status, 303, 'the operator, from an address of its own');
  assert.equal((await signIn(h.base, TOKEN, '192.0.2.1')).status, 303, 'from an address that sent one wrong token');
  // Past the cap a guess is still checked (401), but its address has no free failures left.
  assert.equal((await signIn(h.base, 'guess', '192.0.2.200')).status, 401);
  const next = await signIn(h.base, TOKEN, '192.0.2.200');
  assert.equal(next.status, 429);
  assert.equal(next.headers.get('retry-after'), '1');
});

test("sign-out and sign-in posted from another site are refused; from duet's own pages and from scripts they work", async (t) => {
  const h = await startHarness(t, { publicUrl: 'https://deploy.example.com' });
  const cookie = (await signIn(h.base, TOKEN)).headers.get('set-cookie')!.split(';')[0]!;
  const logout = (headers: Record<string, string>) => fetch(`${h.base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie, ...headers } });
  const crossSite: Array<Record<string, string>> = [
    { origin: 'https://evil.example' },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
    { origin: 'null' },
  ];
  for (const headers of crossSite) {
    const answer = await logout(headers);
    assert.equal(answer.status, 403, JSON.stringify(headers));
    assert.equal(answer.headers.get('set-cookie'), null);
  }
  assert.equal((await signIn(h.base, TOKEN, '198.51.100.9', { origin: 'https://evil.example' })).status, 403);
  assert.equal((await logout({ origin: h.base, 'sec-fetch-site': 'same-origin' })).status, 303);
  assert.equal((await logout({ origin: 'https://deploy.example.com' })).status, 303, 'the public URL, through nginx');
  assert.equal((await logout({})).status, 303, 'no Origin: not a browser');
});

test('every answer of a real duet serve carries X-Content-Type-Options: nosniff, JSON and text included; a page, a strict Content-Security-Policy', async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, { top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  const serve = await startServe(t, setup.configPath, port);
  const bearer = { authorization: `Bearer ${API_TOKEN}` };
  const answers = [
    await fetch(`${serve.url}/healthz`),
    await fetch(`${serve.url}/nowhere`),
    await fetch(`${serve.url}/apps/cafeteria/status`),
    await fetch(`${serve.url}/apps/cafeteria/status`, { headers: bearer }),
    await fetch(`${serve.url}/metrics`, { headers: bearer }),
    await fetch(`${serve.url}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
    await fetch(`${serve.url}/login`),
  ];
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 404, 401, 200, 200, 401, 200],
  );
  for (const answer of answers) assert.equal(answer.headers.get('x-content-type-options'), 'nosniff', answer.url);
  // No script, no frame, forms only to duet itself: what an injected tag could do is nothing.
  const csp = answers[6]!.headers.get('content-security-policy') ?? '';
  for (const directive of ["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"])
    assert.ok(csp.includes(directive), `${directive} in "${csp}"`);
  await serve.stop();
});
