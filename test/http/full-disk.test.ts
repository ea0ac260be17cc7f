import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, postWebhook, startServe, tagPush, type ServeProcess } from '../support/serve.js';
import { fileOnTmpfs, fillDisk, mountTmpfs } from '../support/tmpfs.js';

/**
 * duet serve with its whole state_dir on a small tmpfs, filled to the last block while it runs:
 * what a full disk does to the intake (issue 15, #2) and to a deploy under way (#3), and that a
 * deploy shown failed there stays failed (issue 23, #7).
 */

const REPO = 'inu-appcenter/cafeteria-server';

async function onTmpfs(t: TestContext, tags: Record<string, Record<string, string>>) {
  const port = await freePort();
  const stateDir = await mkdtemp(join(tmpdir(), 'duet-full-state-'));
  const setup = await setupDuet(t, { tags, stateDir, app: { deploy_on: '{ tags: ["v*"] }' }, top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  // Mounted after setupDuet, so that its after hook (stop both colors) runs first, while their
  // pid files are still there to be read.
  await mountTmpfs(t, '16m', { at: stateDir });
  return { setup, port, stateDir, journal: setup.config.apps.get('cafeteria')!.paths.journal };
}

async function waitForState(serve: ServeProcess, id: string, states: string[]): Promise<any> {
  const record = await pollUntil(
    async () => {
      if (serve.child.exitCode !== null) return { exited: serve.child.exitCode };
      const { body } = await getJson(`${serve.url}/deploys/${id}`).catch(() => ({ body: undefined }));
      // The journal may show the end a moment before the queue records it: wait for the summary.
      return states.includes(body?.state) && body?.summary ? body : undefined;
    },
    { timeoutMs: 60_000, maxIntervalMs: 200 },
  );
  assert.ok(record && !('exited' in record), `deploy ${id} did not reach ${states.join('/')}: ${JSON.stringify(record)}\n${serve.output()}`);
  return record;
}

/** A manual deploy through the API; its id. */
async function apiDeploy(serve: ServeProcess, ref: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ref }),
  });
  return { status: response.status, body: await response.json() };
}

/**
 * After a restart: a deploy asked for now runs after anything the restart resumed (one at a time
 * per app), so once it is over, whatever was going to run again did. It is already live: a noop.
 */
async function afterWhatResumed(serve: ServeProcess, ref: string): Promise<void> {
  const { status, body } = await apiDeploy(serve, ref);
  assert.equal(status, 202, JSON.stringify(body));
  assert.equal((await waitForState(serve, body.deploy, ['succeeded', 'failed', 'errored'])).summary, 'Already live on blue');
}

/** Every non-blank line of the journal is a whole JSON record: nothing torn, nothing glued. */
async function journalLines(path: string): Promise<any[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

test('a full disk: a signed delivery is answered 503 with nothing of it on disk; redelivered later, it is accepted and survives a restart', async (t) => {
  const { setup, port, stateDir, journal } = await onTmpfs(t, { v1: {}, v2: { VERSION: 'v2\n' } });
  // 12 bytes short of a page: on the full disk the delivery's line lands 12 bytes and stops.
  const padding = '\n'.repeat(4096 - 12);
  await mkdir(dirname(journal), { recursive: true });
  await writeFile(journal, padding);
  const serve = await startServe(t, setup.configPath, port);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const free = await fillDisk(stateDir);

  const refused = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-full-disk');
  const answer = (await refused.json()) as { error: string; hint?: string };
  assert.equal(refused.status, 503, JSON.stringify(answer));
  assert.match(answer.error, /^could not queue the deploy of cafeteria: could not save the trigger in <state_dir>\/cafeteria\/journal\.ndjson: ENOSPC/);
  assert.match(answer.hint ?? '', /free space on the disk holding <state_dir>\/cafeteria\/journal\.ndjson .*redeliver/);
  // The sender learns nothing of the machine's layout; duet serve's log has the path.
  assert.ok(!JSON.stringify(answer).includes(stateDir), JSON.stringify(answer));
  const logged = await pollUntil(async () => (serve.output().includes(journal) ? true : undefined), { timeoutMs: 5_000 });
  assert.ok(logged, `the log names the file:\n${serve.output()}`);
  const api = await apiDeploy(serve, 'v2');
  assert.equal(api.status, 503, JSON.stringify(api.body));
  assert.match(api.body.error, /could not save the trigger in <state_dir>\/cafeteria\/journal\.ndjson: ENOSPC/);
  assert.ok(!JSON.stringify(api.body).includes(stateDir), JSON.stringify(api.body));
  assert.equal(await readFile(journal, 'utf8'), padding, 'the part of the line that fitted was cut off again');
  assert.match(serve.output(), /webhook delivery failed/);
  assert.equal((await fetch(`${serve.url}/healthz`)).status, 200);

  await free();
  const redelivered = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-full-disk');
  assert.equal(redelivered.status, 202);
  const accepted = (await redelivered.json()) as { deploy: string; duplicate?: boolean };
  assert.equal(accepted.duplicate, undefined, 'the refused delivery was never taken as seen');
  assert.equal((await waitForState(serve, accepted.deploy, ['succeeded', 'failed', 'errored'])).state, 'succeeded');
  assert.ok((await journalLines(journal)).length >= 2, 'every line whole');

  await serve.stop();
  const again = await startServe(t, setup.configPath, port);
  const { body } = await getJson(`${again.url}/deploys/${accepted.deploy}`);
  assert.equal(body?.state, 'succeeded', 'known after the restart');
  await again.stop();
});

test('the journal full during a deploy: it stops at the step it cannot record, says the disk is full, stays up; once there is room the outcome is written, and after a restart the failed deploy does not run again', async (t) => {
  const port = await freePort();
  const stateDir = await mkdtemp(join(tmpdir(), 'duet-full-state-'));
  // The health step lasts 3 s: room to fill the disk before the outcome is written, under load too.
  const tags = { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"startDelayMs":3000}' }, v3: { VERSION: 'v3\n' } };
  const setup = await setupDuet(t, { tags, stateDir, app: { deploy_on: '{ tags: ["v*"] }' }, top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  // Only the app's journal is on the full disk: the deploy's checkout and processes have room,
  // and only its record cannot be written, which is what used to stop duet serve. (Nor is the
  // reserve kept beside the journal on that disk: only a retry once there is room saves them.)
  const journal = setup.config.apps.get('cafeteria')!.paths.journal;
  await mkdir(dirname(journal), { recursive: true });
  const small = await fileOnTmpfs(t, journal, '64k');
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const serve = await startServe(t, setup.configPath, port);
  const [v1, v2, v3] = [await setup.repo.revParse('v1^{commit}'), await setup.repo.revParse('v2^{commit}'), await setup.repo.revParse('v3^{commit}')];

  const { deploy: id } = (await (await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-v2')).json()) as { deploy: string };
  // v3 waits behind v2, and its turn comes while the disk is full.
  const { deploy: behind } = (await (await postWebhook(serve.url, 'push', tagPush(REPO, 'v3', v3), 'delivery-v3')).json()) as { deploy: string };
  const inHealth = await pollUntil(
    async () => ((await getJson(`${serve.url}/deploys/${id}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined),
    { timeoutMs: 30_000, maxIntervalMs: 100 },
  );
  assert.ok(inHealth, 'the deploy reached its health step');
  const free = await fillDisk(small, { slackOf: [journal] });

  const record = await waitForState(serve, id, ['succeeded', 'failed', 'errored']);
  // A failure of the deploy (the machine refused), named, not an internal error; it went no further.
  assert.equal(record.state, 'failed', JSON.stringify(record));
  const unsaved = /; not saved yet \(ENOSPC[^)]*\): duet serve writes it as soon as the disk takes it$/;
  assert.match(record.summary ?? '', /^the disk is full \(ENOSPC\) at health: could not journal the step of deploy \S+; not saved yet/);
  assert.match(record.summary ?? '', unsaved);
  assert.equal(record.steps.at(-1).name, 'health', 'no step after the one it could not record');
  const notStarted = await waitForState(serve, behind, ['succeeded', 'failed', 'errored']);
  assert.equal(notStarted.state, 'failed', JSON.stringify(notStarted));
  assert.match(
    notStarted.summary ?? '',
    /^the disk is full \(ENOSPC\) at queue: its start could not be saved in the journal, so it did not start; not saved yet/,
  );
  assert.deepEqual(notStarted.steps, [], 'it did not start');
  assert.doesNotMatch((await setup.get('/').catch(() => ({ body: '' }))).body, /cafeteria v[23]/, 'neither went live');
  assert.equal(serve.child.exitCode, null, 'duet serve is still running');
  assert.equal((await fetch(`${serve.url}/healthz`)).status, 200);
  assert.match(serve.output(), /could not save the state of a deploy/);
  const whileFull = await postWebhook(serve.url, 'push', tagPush(REPO, 'v1', v1), 'delivery-v1-full');
  assert.equal(whileFull.status, 503);

  await free();
  // The outcomes the journal did not take are written as soon as it has room, and said so.
  const settled = await pollUntil(
    async () => {
      const lines = (await journalLines(journal)).filter((e) => e.type === 'settled');
      return lines.length === 2 ? lines : undefined;
    },
    { timeoutMs: 15_000, maxIntervalMs: 200 },
  );
  assert.deepEqual(
    settled?.map((e) => [e.id, e.state]),
    [
      [id, 'failed'],
      [behind, 'failed'],
    ],
  );
  assert.doesNotMatch((await getJson(`${serve.url}/deploys/${id}`)).body.summary, /not saved/);
  const later = await postWebhook(serve.url, 'push', tagPush(REPO, 'v1', v1), 'delivery-v1');
  assert.equal(later.status, 202);
  const { deploy: next } = (await later.json()) as { deploy: string };
  const done = await waitForState(serve, next, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.match((await setup.get('/')).body, /cafeteria v1/);

  // Days later, duet serve restarts: what was shown failed stays failed, and runs no more.
  await serve.stop();
  const again = await startServe(t, setup.configPath, port);
  await afterWhatResumed(again, 'v1');
  for (const failed of [id, behind]) assert.equal((await getJson(`${again.url}/deploys/${failed}`)).body?.state, 'failed');
  const begun = (await journalLines(journal)).filter((e) => e.type === 'begin').map((e) => e.id);
  assert.equal(begun.filter((b) => b === id).length, 1, 'v2 ran once');
  assert.ok(!begun.includes(behind), 'v3 never ran');
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'production did not change');
  await again.stop();
});

test('a deploy that fails on a full state dir is saved as failed with the reserve: after a crash while the disk is still full and a restart with room, it does not run again', async (t) => {
  const tags = { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"startDelayMs":3000}' } };
  const { setup, port, stateDir, journal } = await onTmpfs(t, tags);
  await setup.succeed(['deploy', '--ref', 'v1']);
  const serve = await startServe(t, setup.configPath, port);
  const v2 = await setup.repo.revParse('v2^{commit}');

  const { deploy: id } = (await (await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-v2')).json()) as { deploy: string };
  const inHealth = await pollUntil(
    async () => ((await getJson(`${serve.url}/deploys/${id}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined),
    { timeoutMs: 30_000, maxIntervalMs: 100 },
  );
  assert.ok(inHealth, 'the deploy reached its health step');
  // Every block of the state dir's disk taken, the journal's last page too.
  const free = await fillDisk(stateDir, { slackOf: [journal] });

  const record = await waitForState(serve, id, ['succeeded', 'failed', 'errored']);
  assert.equal(record.state, 'failed', JSON.stringify(record));
  assert.match(record.summary ?? '', /^the disk is full \(ENOSPC\) at health: could not journal the step of deploy \S+$/, 'saved at once');
  const settled = (await journalLines(journal)).filter((e) => e.type === 'settled');
  assert.deepEqual(
    settled.map((e) => [e.id, e.state]),
    [[id, 'failed']],
    'on disk, though the disk is full',
  );

  // duet serve dies before anyone makes room; the disk is cleaned up; it starts again.
  await serve.crash();
  await free();
  const again = await startServe(t, setup.configPath, port);
  await afterWhatResumed(again, 'v1');
  assert.equal((await getJson(`${again.url}/deploys/${id}`)).body?.state, 'failed');
  const begun = (await journalLines(journal)).filter((e) => e.type === 'begin' && e.id === id);
  assert.equal(begun.length, 1, 'v2 ran once');
  assert.match((await setup.get('/')).body, /cafeteria v1/, 'production did not change');
  await again.stop();
});
