import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { pollUntil } from '../../src/util/poll.js';
import { launchChromium } from '../support/browser.js';
import { repoRoot } from '../support/git-repo.js';
import { setupDuet } from '../support/duet.js';
import { journalEvents } from '../support/journal.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';

/**
 * The dashboard's buttons clicked in headless Chromium on a real duet serve: the deploys and the
 * rollback they start run for real (git, the app's processes, nginx), through the real queue.
 */

/** The deploy page a confirmation redirected to: its id, once the deploy has ended. */
async function deployEnded(page: Page, url: string): Promise<{ id: string; record: any }> {
  await page.waitForURL(/\/deploys\/[\w-]+\/view$/);
  const id = /\/deploys\/([\w-]+)\/view$/.exec(page.url())![1]!;
  const record = await pollUntil(
    async () => {
      const { body } = await getJson(`${url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored'].includes(body?.state) ? body : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.ok(record, `deploy ${id} did not end`);
  return { id, record };
}

test(
  'in Chromium: Redeploy and Roll back, each confirmed, deploy for real; a stale rollback page changes nothing; forged posts are refused',
  { timeout: 240_000 },
  async (t) => {
    const browser = await launchChromium(t);
    if (!browser) return;
    const port = await freePort();
    const setup = await setupDuet(t, { top: { server: `{ listen: "127.0.0.1:${port}" }` } });
    await setup.succeed(['deploy', '--ref', 'v1']);
    await setup.succeed(['deploy', '--ref', 'main']);
    const v2 = await setup.repo.revParse('main');
    // main moves on after its deploy: a redeploy of what is live (main) deploys its tip.
    const v3 = await setup.repo.commit({ VERSION: 'v3\n' }, 'v3');
    assert.match((await setup.get('/')).body, /cafeteria v2/);
    const serve = await startServe(t, setup.configPath, port);
    const base = serve.url;

    await mkdir(join(repoRoot(), 'test-output'), { recursive: true });
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
    await page.goto(`${base}/`);
    await page.fill('input[name=token]', API_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/`);

    await page.click('form[action="/apps/cafeteria/actions/redeploy"] button');
    const confirm = (await page.textContent('main')) ?? '';
    assert.match(confirm, /Redeploy cafeteria\?/);
    assert.match(confirm, new RegExp(`live now\\s*green ${v2.slice(0, 7)} refs/heads/main`));
    assert.match(confirm, new RegExp(`becomes\\s*${v3.slice(0, 7)} refs/heads/main, on blue`));
    await page.click('button.primary');
    const redeploy = await deployEnded(page, base);
    assert.equal(redeploy.record.state, 'succeeded', JSON.stringify(redeploy.record));
    assert.equal(redeploy.record.sha, v3);
    assert.match(redeploy.record.requestedBy, /^dashboard session [0-9a-f]{8} \(127\.0\.0\.1\)$/);
    assert.match((await setup.get('/')).body, /cafeteria v3/);
    await page.reload();
    assert.match((await page.textContent('main')) ?? '', /requested by\s*dashboard session/);

    await page.goto(`${base}/`);
    await page.click('form[action="/apps/cafeteria/actions/rollback"] button');
    const back = (await page.textContent('main')) ?? '';
    assert.match(back, new RegExp(`live now\\s*blue ${v3.slice(0, 7)}`));
    assert.match(back, new RegExp(`becomes\\s*green ${v2.slice(0, 7)}`));
    await page.screenshot({ path: join(repoRoot(), 'test-output', 'rollback-confirm.png'), fullPage: true });
    await page.click('button.primary');
    const rollback = await deployEnded(page, base);
    assert.equal(rollback.record.kind, 'rollback');
    assert.equal(rollback.record.state, 'succeeded', JSON.stringify(rollback.record));
    assert.match((await setup.get('/')).body, /cafeteria v2/);

    // Two operators open Roll back on the same page; the second to confirm finds it done.
    await page.goto(`${base}/`);
    await page.click('form[action="/apps/cafeteria/actions/rollback"] button');
    const other = await context.newPage();
    await other.goto(`${base}/`);
    await other.click('form[action="/apps/cafeteria/actions/rollback"] button');
    await other.click('button.primary');
    const first = await deployEnded(other, base);
    assert.equal(first.record.state, 'succeeded');
    assert.match((await setup.get('/')).body, /cafeteria v3/);
    const settled = await pollUntil(
      async () => ((await journalEvents(setup.app.paths.journal)).some((e) => e.type === 'settled' && e.id === first.id) ? true : undefined),
      { timeoutMs: 10_000 },
    );
    assert.ok(settled, 'the queue settles the rollback');
    const before = (await journalEvents(setup.app.paths.journal)).length;
    assert.deepEqual(errors, [], 'no CSP violations or other console errors');
    await page.click('button.primary');
    assert.match((await page.textContent('main')) ?? '', new RegExp(`Something else changed it first[\\s\\S]*${v3.slice(0, 7)} is live on blue now`));
    assert.match((await setup.get('/')).body, /cafeteria v3/, 'not toggled back');

    // The cookie alone, without the form's token or with a wrong one, does nothing.
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    for (const csrf of [undefined, 'A'.repeat(43)]) {
      const answer = await fetch(`${base}/apps/cafeteria/actions/rollback`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ from: v3, ...(csrf ? { csrf } : {}) }).toString(),
      });
      assert.equal(answer.status, 403);
    }
    assert.equal((await journalEvents(setup.app.paths.journal)).length, before, 'nothing journaled');
    assert.match((await setup.get('/')).body, /cafeteria v3/);

    // A kept release further back than the warm color: its own Roll back, confirmed, restores it.
    const v1 = await setup.repo.revParse('v1^{commit}');
    await page.goto(`${base}/`);
    await page.click(`form[action="/apps/cafeteria/actions/rollback"]:has(input[name=to][value="${v1}"]) button`);
    const kept = (await page.textContent('main')) ?? '';
    assert.match(kept, /Roll back cafeteria to a kept release\?/);
    assert.match(kept, new RegExp(`becomes\\s*green ${v1.slice(0, 7)} v1`));
    await page.click('button.primary');
    const restored = await deployEnded(page, base);
    assert.equal(restored.record.state, 'succeeded', JSON.stringify(restored.record));
    assert.match((await setup.get('/')).body, /cafeteria v1/);
    const besidesTheStalePage = (errors as string[]).filter((line) => !line.includes('status of 409'));
    assert.deepEqual(besidesTheStalePage, [], 'no CSP violations or other console errors');
    await serve.stop();
  },
);
