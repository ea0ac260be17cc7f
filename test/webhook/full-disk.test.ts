import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { getJson, postWebhook, startServe, tagPush, type ServeProcess } from '../support/serve.js';
import { fileOnTmpfs, fillDisk, mountTmpfs } from '../support/tmpfs.js';

/**
 * duet serve with its whole state_dir on a small tmpfs, filled to the last block while it runs:
 * what a full disk does to the intake (issue 15, #2) and to a deploy under way (#3).
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

/** Every non-blank line of the journal is a whole JSON record: nothing torn, nothing glued. */
async function journalLines(path: string): Promise<unknown[]> {
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
  assert.match(answer.error, /could not queue the deploy of cafeteria: could not save the trigger in .*journal\.ndjson: ENOSPC/);
  assert.match(answer.hint ?? '', /free space .*redeliver/);
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

test('the journal full during a deploy: it stops at the step it cannot record, duet serve stays up, logs it, marks the deploy and answers 503 until there is room', async (t) => {
  const port = await freePort();
  const stateDir = await mkdtemp(join(tmpdir(), 'duet-full-state-'));
  // The health step lasts 3 s: room to fill the disk before the outcome is written, under load too.
  const tags = { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"startDelayMs":3000}' } };
  const setup = await setupDuet(t, { tags, stateDir, app: { deploy_on: '{ tags: ["v*"] }' }, top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  // Only the app's journal is on the full disk: the deploy's checkout and processes have room,
  // and only its record cannot be written, which is what used to stop duet serve.
  const journal = setup.config.apps.get('cafeteria')!.paths.journal;
  await mkdir(dirname(journal), { recursive: true });
  const small = await fileOnTmpfs(t, journal, '64k');
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const serve = await startServe(t, setup.configPath, port);
  const [v1, v2] = [await setup.repo.revParse('v1^{commit}'), await setup.repo.revParse('v2^{commit}')];

  const { deploy: id } = (await (await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-v2')).json()) as { deploy: string };
  const inHealth = await pollUntil(
    async () => ((await getJson(`${serve.url}/deploys/${id}`)).body?.steps?.some((s: any) => s.name === 'health') ? true : undefined),
    { timeoutMs: 30_000, maxIntervalMs: 100 },
  );
  assert.ok(inHealth, 'the deploy reached its health step');
  const free = await fillDisk(small, { slackOf: [journal] });

  const record = await waitForState(serve, id, ['succeeded', 'failed', 'errored']);
  // A failure of the deploy (the machine refused), not an internal error; it went no further.
  assert.equal(record.state, 'failed', JSON.stringify(record));
  assert.match(record.summary ?? '', /^health failed: could not journal the step of deploy .*ENOSPC.*; not saved \(ENOSPC.*re-runs it at its next start$/);
  assert.equal(record.steps.at(-1).name, 'health', 'no step after the one it could not record');
  assert.doesNotMatch((await setup.get('/').catch(() => ({ body: '' }))).body, /cafeteria v2/, 'v2 never went live');
  assert.equal(serve.child.exitCode, null, 'duet serve is still running');
  assert.equal((await fetch(`${serve.url}/healthz`)).status, 200);
  assert.match(serve.output(), /could not save the state of a deploy/);
  const whileFull = await postWebhook(serve.url, 'push', tagPush(REPO, 'v1', v1), 'delivery-v1-full');
  assert.equal(whileFull.status, 503);

  await free();
  const later = await postWebhook(serve.url, 'push', tagPush(REPO, 'v1', v1), 'delivery-v1');
  assert.equal(later.status, 202);
  const { deploy: next } = (await later.json()) as { deploy: string };
  const done = await waitForState(serve, next, ['succeeded', 'failed', 'errored']);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  await serve.stop();
});
