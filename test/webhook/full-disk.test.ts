import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { getJson, postWebhook, startServe, tagPush } from '../support/serve.js';
import { fillDisk, mountTmpfs } from '../support/tmpfs.js';

/**
 * duet serve with its whole state_dir on a small tmpfs, filled to the last block while it runs:
 * what a full disk does to the intake (issue 15, #2).
 */

const REPO = 'inu-appcenter/cafeteria-server';

async function onTmpfs(t: TestContext, tags: Record<string, Record<string, string>>) {
  const port = await freePort();
  const stateDir = await mkdtemp(join(tmpdir(), 'duet-full-state-'));
  const setup = await setupDuet(t, { tags, stateDir, app: { deploy_on: '{ tags: ["v*"] }' }, top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  // Mounted after setupDuet, so that its after hook (stop both colors) runs first, while their
  // pid files are still there to be read.
  await mountTmpfs(t, '16m', { at: stateDir });
  return { setup, port, stateDir, triggers: join(stateDir, 'triggers.ndjson') };
}

async function waitForState(url: string, id: string, states: string[]): Promise<any> {
  const record = await pollUntil(async () => {
    const { body } = await getJson(`${url}/deploys/${id}`).catch(() => ({ body: undefined }));
    return states.includes(body?.state) ? body : undefined;
  }, { timeoutMs: 60_000, maxIntervalMs: 200 });
  assert.ok(record, `deploy ${id} did not reach ${states.join('/')}`);
  return record;
}

/** Every non-blank line of the trigger file is a whole JSON record: nothing torn, nothing glued. */
async function triggerRecords(path: string): Promise<unknown[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

test('a full disk: a signed delivery is answered 503 with nothing of it on disk; redelivered later, it is accepted and survives a restart', async (t) => {
  const { setup, port, stateDir, triggers } = await onTmpfs(t, { v1: {}, v2: { VERSION: 'v2\n' } });
  // 12 bytes short of a page: on the full disk the delivery's line lands 12 bytes and stops.
  const padding = '\n'.repeat(4096 - 12);
  await writeFile(triggers, padding);
  const serve = await startServe(t, setup.configPath, port);
  const v2 = await setup.repo.revParse('v2^{commit}');
  const free = await fillDisk(stateDir);

  const refused = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-full-disk');
  const answer = (await refused.json()) as { error: string; hint?: string };
  assert.equal(refused.status, 503, JSON.stringify(answer));
  assert.match(answer.error, /could not queue the deploy of cafeteria: could not save the trigger in .*triggers\.ndjson: ENOSPC/);
  assert.match(answer.hint ?? '', /free space .*redeliver/);
  assert.equal(await readFile(triggers, 'utf8'), padding, 'the part of the line that fitted was cut off again');
  assert.match(serve.output(), /webhook delivery failed/);
  assert.equal((await fetch(`${serve.url}/healthz`)).status, 200);

  await free();
  const redelivered = await postWebhook(serve.url, 'push', tagPush(REPO, 'v2', v2), 'delivery-full-disk');
  assert.equal(redelivered.status, 202);
  const accepted = (await redelivered.json()) as { deploy: string; duplicate?: boolean };
  assert.equal(accepted.duplicate, undefined, 'the refused delivery was never taken as seen');
  assert.equal((await waitForState(serve.url, accepted.deploy, ['succeeded', 'failed', 'errored'])).state, 'succeeded');
  assert.ok((await triggerRecords(triggers)).length >= 2, 'every line whole');

  await serve.stop();
  const again = await startServe(t, setup.configPath, port);
  const { body } = await getJson(`${again.url}/deploys/${accepted.deploy}`);
  assert.equal(body?.state, 'succeeded', 'known after the restart');
  await again.stop();
});
