import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { newDeployId } from '../../src/pipeline/journal.js';
import { acquireLock } from '../../src/pipeline/lock.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe, type ServeProcess } from '../support/serve.js';

/**
 * The links of commit statuses, `<public_url>/deploys/<id>`, after a compaction dropped those
 * deploys from the journal (issue 23, #7; the audit's N10: every sampled id of a 2,500-push burst
 * answered 404 a minute after its 202). A real duet serve, whose deploy ends with a journal past
 * 2 MB and compacts it to its last 300 deploys.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

async function deployThroughApi(serve: ServeProcess, ref: string): Promise<string> {
  const response = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref }),
  });
  const body = (await response.json()) as { deploy: string; created: boolean };
  assert.equal(response.status, 202, JSON.stringify(body));
  assert.equal(body.created, true, JSON.stringify(body));
  return body.deploy;
}

async function finished(serve: ServeProcess, id: string): Promise<any> {
  const body = await pollUntil(
    async () => {
      const { body } = await getJson(`${serve.url}/deploys/${id}`);
      return ['succeeded', 'failed', 'errored', 'superseded'].includes(body?.state) && body?.summary ? body : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.ok(body, `deploy ${id} did not finish\n${serve.output()}`);
  return body;
}

/**
 * 2.1 MB of deploys that ran 100 days ago, before anything of the test: the next deploy that ends
 * compacts the journal, and drops them with no summary (older than 90 days).
 */
async function oldDeploys(journal: string): Promise<string[]> {
  const ids: string[] = [];
  const lines: string[] = [];
  const detail = 'x'.repeat(10_000);
  for (let i = 0; i < 210; i += 1) {
    const when = new Date(Date.now() - 100 * DAY_MS + i * 1000);
    const id = newDeployId(when);
    const at = when.toISOString();
    ids.push(id);
    lines.push(JSON.stringify({ type: 'begin', id, at, kind: 'deploy', ref: 'v0', pid: 1 }));
    lines.push(JSON.stringify({ type: 'step', id, at, step: 'update', status: 'done', ms: 1, detail }));
    lines.push(JSON.stringify({ type: 'end', id, at, outcome: 'success' }));
  }
  await mkdir(dirname(journal), { recursive: true });
  await appendFile(journal, `${lines.join('\n')}\n`);
  return ids;
}

test('a deploy compacted away still answers at its link, as a summary marked compacted, after a restart too; one older than 90 days does not', async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, { top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  const ancient = await oldDeploys(setup.app.paths.journal);
  const serve = await startServe(t, setup.configPath, port);

  const first = await deployThroughApi(serve, 'v1');
  const live = await finished(serve, first);
  assert.equal(live.state, 'succeeded', JSON.stringify(live));
  // The app's lock held here (a deploy from a shell, say): v2's turn comes and it waits for the
  // lock, while a burst of triggers comes, each superseded by the next (they name tags that do
  // not exist: none of them runs), then v1 again. v2's deploy ends with the compaction.
  const lock = await acquireLock(setup.app, { command: 'test: a deploy from a shell', wait: false });
  const waiting = await deployThroughApi(serve, 'v2');
  const running = await pollUntil(async () => ((await getJson(`${serve.url}/deploys/${waiting}`)).body?.state === 'running' ? true : undefined), {
    timeoutMs: 30_000,
  });
  assert.ok(running, 'v2 waits for the lock');
  const burst: string[] = [];
  for (let i = 0; i < 320; i += 1) burst.push(await deployThroughApi(serve, `refs/tags/burst-${i}`));
  const last = await deployThroughApi(serve, 'v1');
  await lock.release();
  assert.equal((await finished(serve, waiting)).state, 'succeeded');
  assert.equal((await finished(serve, last)).state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v1/);

  const check = async (at: ServeProcess) => {
    // Kept whole: its steps are there.
    const kept = (await getJson(`${at.url}/deploys/${last}`)).body;
    assert.equal(kept.compacted, false);
    assert.ok(kept.steps.length > 0);

    const { status, body } = await getJson(`${at.url}/deploys/${first}`);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.compacted, true);
    assert.equal(body.state, 'succeeded');
    assert.equal(body.kind, 'deploy');
    assert.equal(body.ref, 'v1');
    assert.equal(body.sha, await setup.repo.revParse('v1^{commit}'));
    assert.match(body.summary, /^Live on blue in \d+\.\ds$/);
    assert.ok(body.startedAt && body.finishedAt);
    assert.deepEqual(body.steps, [], 'its steps went with the compaction');

    const superseded = (await getJson(`${at.url}/deploys/${burst[0]}`)).body;
    assert.deepEqual([superseded?.compacted, superseded?.state, superseded?.summary], [true, 'superseded', 'Superseded by refs/tags/burst-1']);

    const log = await getJson(`${at.url}/deploys/${first}/log`);
    assert.equal(log.status, 404);
    assert.match(log.body.error, /was compacted away: only its summary is kept/);

    const page = await fetch(`${at.url}/deploys/${first}/view`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Compacted: this summary is what the journal keeps/);

    assert.equal((await getJson(`${at.url}/deploys/${ancient[0]}`)).status, 404, 'older than 90 days: gone');
  };
  await check(serve);
  // Restarted, duet serve has none of them in memory: the journal answers.
  await serve.stop();
  const again = await startServe(t, setup.configPath, port);
  await check(again);
  await again.stop();
});
