import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pickApp } from '../../src/config/load.js';
import { deployLogPath } from '../../src/pipeline/deploy-log.js';
import { appJournal } from '../../src/pipeline/app-journal.js';
import { launchChromium } from '../support/browser.js';
import { repoRoot } from '../support/git-repo.js';
import { buildScene } from './dashboard-fixture.js';
import { addTrigger, bearer, readUntil, startHarness, TOKEN } from './http-harness.js';

const form = (token: string, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  redirect: 'manual',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams({ token }).toString(),
});

async function signIn(base: string): Promise<string> {
  const answer = await fetch(`${base}/login`, form(TOKEN));
  assert.equal(answer.status, 303);
  return answer.headers.get('set-cookie')!.split(';')[0]!;
}

test('sign-in: a form, an HttpOnly SameSite=Strict cookie that is not the token, 401 on a wrong token', async (t) => {
  const h = await startHarness(t);
  const anonymous = await fetch(`${h.base}/`, { redirect: 'manual' });
  assert.equal(anonymous.status, 303);
  assert.equal(anonymous.headers.get('location'), '/login');
  const login = await fetch(`${h.base}/login`);
  assert.equal(login.status, 200);
  assert.match(await login.text(), /<form method="post" action="\/login">[\s\S]*name="token"/);

  const wrong = await fetch(`${h.base}/login`, form('guess'));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('set-cookie'), null);
  assert.match(await wrong.text(), /not the token[\s\S]*name="token"/);

  const right = await fetch(`${h.base}/login`, form(TOKEN));
  assert.equal(right.status, 303);
  assert.equal(right.headers.get('location'), '/');
  const setCookie = right.headers.get('set-cookie')!;
  assert.match(setCookie, /^duet_session=v1\.\d+\.[\w-]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
  assert.ok(!setCookie.includes(TOKEN), 'the cookie is derived from the token, not the token');
  const overHttps = await fetch(`${h.base}/login`, form(TOKEN, { 'x-forwarded-proto': 'https' }));
  assert.match(overHttps.headers.get('set-cookie')!, /; Secure$/);

  const cookie = setCookie.split(';')[0]!;
  const page = await fetch(`${h.base}/`, { headers: { cookie } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Sign out/);
  // The session reads the API too (the dashboard's links), but never triggers a deploy (CSRF).
  assert.equal((await fetch(`${h.base}/apps/cafeteria/status`, { headers: { cookie } })).status, 200);
  assert.equal((await fetch(`${h.base}/apps/cafeteria/deploy`, { method: 'POST', headers: { cookie } })).status, 401);
  assert.equal(h.queue.submitted.length, 0);

  const forged = cookie.replace(/.(?=$)/, (c) => (c === 'A' ? 'B' : 'A'));
  assert.equal((await fetch(`${h.base}/`, { headers: { cookie: forged }, redirect: 'manual' })).status, 303);
  const logout = await fetch(`${h.base}/logout`, { method: 'POST', headers: { cookie }, redirect: 'manual' });
  assert.equal(logout.status, 303);
  assert.match(logout.headers.get('set-cookie')!, /^duet_session=; Path=\/; Max-Age=0; HttpOnly/);

  const closed = await startHarness(t, { token: undefined });
  const disabled = await fetch(`${closed.base}/login`, form('x'));
  assert.equal(disabled.status, 503);
  assert.match(await disabled.text(), /DUET_API_TOKEN/);
});

test('the dashboard shows apps, colors, the running deploy and recent deploys', async (t) => {
  const h = await startHarness(t);
  const scene = await buildScene(t, h);
  const cookie = await signIn(h.base);
  const answer = await fetch(`${h.base}/`, { headers: { cookie } });
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  const page = await answer.text();
  assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  assert.match(page, /<h2>cafeteria <span class="badge b-blue">serving blue<\/span>/);
  assert.match(page, /<h2>menu <span class="badge muted">not connected<\/span>/);
  assert.match(page, /blue <span class="badge live">live<\/span> <span class="badge ok">healthy<\/span>/);
  assert.match(page, /<code>3f9c1e7<\/code> <code>refs\/tags\/v2.0.0<\/code>/);
  assert.match(page, /3d 4h/, 'uptime of blue');
  assert.match(page, /<strong>Deploying<\/strong> v2.1.0 — step <code>start<\/code>/);
  assert.match(page, /1 queued/);
  for (const id of [scene.running, scene.succeeded, scene.failed]) assert.ok(page.includes(`href="/deploys/${id}/view"`), id);
  assert.match(page, /succeeded<\/span><\/td><td class="num">12.0 s/);
  assert.match(page, /health: green never became healthy/);

  const running = await fetch(`${h.base}/deploys/${scene.running}/view`, { headers: { cookie } });
  const body = await running.text();
  assert.match(body, /<meta http-equiv="refresh" content="2">/, 'a running deploy refreshes itself');
  assert.match(body, /<code>update<\/code><\/td><td><span class="badge ok">done<\/span><\/td><td class="num">18.3 s/);
  assert.match(body, /added 212 packages in 17s/);
  const done = await (await fetch(`${h.base}/deploys/${scene.succeeded}/view`, { headers: { cookie } })).text();
  assert.doesNotMatch(done, /http-equiv="refresh"/, 'a finished deploy does not');

  // The link in a commit status: a browser gets the page, an API client gets JSON.
  const browser = await fetch(`${h.base}/deploys/${scene.succeeded}`, { headers: { cookie, accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  assert.match(browser.headers.get('content-type') ?? '', /text\/html/);
  const api = await fetch(`${h.base}/deploys/${scene.succeeded}`, { headers: bearer() });
  assert.equal((await api.json()).state, 'succeeded');
  const raw = await fetch(`${h.base}/deploys/${scene.failed}/log.txt`, { headers: { cookie } });
  assert.equal(raw.status, 404, 'the failed deploy of the scene has no log file');
  const abort = new AbortController();
  const live = await fetch(`${h.base}/deploys/${scene.running}/log.txt`, { headers: { cookie }, signal: abort.signal });
  assert.equal(live.status, 200);
  // A running deploy's log stays open: the stream must not end before this line.
  await readUntil(live.body!.getReader(), { text: '' }, /added 212 packages/);
  abort.abort();
  assert.equal((await fetch(`${h.base}/deploys/${scene.running}/log.txt`, { redirect: 'manual' })).status, 303, 'the raw log needs the sign-in too');
  const tooMany = await fetch(`${h.base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'a=1&b=2&c=3&d=4&e=5&f=6&token=x',
  });
  assert.equal(tooMany.status, 413);
});

test('values from payloads are escaped: a ref cannot inject markup', async (t) => {
  const h = await startHarness(t, { publicDashboard: true });
  const evil = '<script>alert(1)</script>';
  const record = await addTrigger(h, { ref: evil, state: 'running', requestedBy: 'push by <b>mallory</b>' });
  const app = pickApp(h.config, 'cafeteria');
  const journal = appJournal(h.config, app.name);
  await journal.append({ type: 'begin', id: record.id, at: new Date().toISOString(), kind: 'deploy', ref: evil, pid: 1 });
  await journal.append({
    type: 'end',
    id: record.id,
    at: new Date().toISOString(),
    outcome: 'failed',
    error: '<iframe src=//evil>',
    failedStep: 'resolve',
  });
  await journal.append({ type: 'settled', id: record.id, at: new Date().toISOString(), state: 'failed', summary: '"><img src=x onerror=alert(2)>' });
  const log = deployLogPath(app, record.id);
  await mkdir(dirname(log), { recursive: true });
  await appendFile(log, `fatal: couldn't find remote ref ${evil}\n`);

  for (const path of ['/', `/deploys/${record.id}/view`]) {
    const page = await (await fetch(`${h.base}${path}`)).text();
    assert.ok(!page.includes('<script'), path);
    assert.ok(!page.includes('<img'), path);
    assert.ok(!page.includes('<iframe'), path);
    assert.ok(!page.includes('<b>mallory'), path);
    assert.ok(page.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), path);
  }
});

test('public_dashboard: no sign-in for the pages, the API still needs the token', async (t) => {
  const h = await startHarness(t, { publicDashboard: true });
  const page = await fetch(`${h.base}/`, { redirect: 'manual' });
  assert.equal(page.status, 200);
  const text = await page.text();
  assert.match(text, /cafeteria/);
  assert.doesNotMatch(text, /Sign out/);
  assert.equal((await fetch(`${h.base}/apps/cafeteria/status`)).status, 401);
  assert.equal((await fetch(`${h.base}/metrics`)).status, 401);
});

test('in a headless browser at phone size: sign in, read the dashboard, save a screenshot', async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  const h = await startHarness(t);
  const scene = await buildScene(t, h);
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));

  await page.goto(`${h.base}/`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.fill('input[name=token]', 'wrong');
  await page.click('button[type=submit]');
  assert.match((await page.textContent('body')) ?? '', /not the token/);
  errors.length = 0; // the 401 of the wrong token was the point
  await page.fill('input[name=token]', TOKEN);
  await page.click('button[type=submit]');
  await page.waitForURL(`${h.base}/`);
  const cookies = await context.cookies();
  assert.equal(cookies.find((c) => c.name === 'duet_session')?.httpOnly, true);

  const text = (await page.textContent('main')) ?? '';
  assert.match(text, /cafeteria/);
  assert.match(text, /serving blue/);
  assert.match(text, /Deploying v2\.1\.0/);
  assert.match(text, /v2\.0\.1/);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no horizontal scrolling on a phone (page is ${width}px wide)`);
  assert.deepEqual(errors, [], 'no CSP violations or other console errors');

  const out = join(repoRoot(), 'test-output');
  await mkdir(out, { recursive: true });
  await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });
  await page.click(`a[href="/deploys/${scene.running}/view"]`);
  assert.match((await page.textContent('pre')) ?? '', /added 212 packages/);
  await page.screenshot({ path: join(out, 'deploy.png'), fullPage: true });
});
