import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { appJournal } from '../../src/pipeline/app-journal.js';
import { compactJournal } from '../../src/pipeline/journal-compaction.js';
import { DeployQueue } from '../../src/pipeline/queue.js';
import type { TriggerRequest } from '../../src/pipeline/trigger.js';
import { webhookRouter } from '../../src/http/receiver.js';
import { setupDuet } from '../support/duet.js';
import { journalEvents, journalRuns } from '../support/journal.js';
import { freePort } from '../support/ports.js';
import { postWebhook, tagPush, WEBHOOK_SECRET } from '../support/serve.js';

const REPO = 'inu-appcenter/cafeteria-server';
const OTHER_APP_DELIVERIES = 5000;

test("a replayed tag push stays a duplicate after 5,000 deliveries to another app, a compaction of its app's journal and a restart: production stays where it was", async (t) => {
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n' }, v3: { VERSION: 'v3\n' } },
    app: { deploy_on: '{ branches: [main], tags: ["v*"] }' },
  });
  // A second app, `menu`, whose deploys fail at once (no repository): only its deliveries matter.
  const menu = ['  menu:', '    repo: inu-appcenter/menu', '    clone_url: /nonexistent/menu.git', `    listen: "127.0.0.1:${await freePort()}"`];
  menu.push(`    ports: { blue: ${await freePort()}, green: ${await freePort()} }`);
  const config = parseConfig(`${await readFile(setup.configPath, 'utf8')}${menu.join('\n')}\n`, setup.configPath);
  let queue = await DeployQueue.open({ config });
  t.after(() => queue.close());

  // The real receiver over the real queue: it computes the digest of the bytes it verified.
  const app = express().use(webhookRouter({ config, secret: WEBHOOK_SECRET, queue: { submit: (r) => queue.submit(r) }, logger: pino({ level: 'silent' }) }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => (server.closeAllConnections(), server.close()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // The v3 tag push goes live; then the operator goes back to v2.
  const v3Push = tagPush(REPO, 'v3', await setup.repo.revParse('v3^{commit}'));
  const accepted = await postWebhook(url, 'push', v3Push, 'delivery-v3');
  const { deploy: first, ...rest } = (await accepted.json()) as { deploy: string };
  assert.deepEqual([accepted.status, rest], [202, {}]);
  await queue.drain();
  assert.match((await setup.get('/')).body, /cafeteria v3/);
  const manual: TriggerRequest = {
    app: 'cafeteria',
    kind: 'deploy',
    ref: 'refs/tags/v2',
    sha: null,
    fromSha: null,
    source: 'manual',
    deliveryId: null,
    requestedBy: 'API',
  };
  const back = await queue.submit(manual);
  await queue.drain();
  assert.equal(queue.get(back.id)?.state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v2/);

  // 5,000 accepted deliveries of the other app, each with its own delivery id and body.
  const started = Date.now();
  for (let n = 0; n < OTHER_APP_DELIVERIES; n += 250) {
    await Promise.all(
      Array.from({ length: 250 }, (_, i) => {
        const body = `menu push ${n + i}`;
        const sha = createHash('sha1').update(body).digest('hex');
        const bodyDigest = createHash('sha256').update(body).digest('hex');
        return queue.submit({
          app: 'menu',
          kind: 'deploy',
          ref: 'refs/heads/main',
          sha,
          fromSha: null,
          source: 'push',
          deliveryId: `menu-${n + i}`,
          bodyDigest,
          requestedBy: 'push',
        });
      }),
    );
  }
  await queue.drain();
  t.diagnostic(`${OTHER_APP_DELIVERIES} deliveries to menu in ${Date.now() - started} ms`);
  const menuKept = queue.list({ app: 'menu', limit: Infinity }).length;
  assert.ok(menuKept < OTHER_APP_DELIVERIES, `the other app's journal was compacted: ${menuKept} of its triggers are left in memory`);

  const journal = appJournal(config, setup.app.name);
  const replay = async (deliveryId: string, when: string): Promise<void> => {
    const answer = await postWebhook(url, 'push', v3Push, deliveryId);
    assert.deepEqual([answer.status, await answer.json()], [202, { deploy: first, duplicate: true }], `${when}: the first deploy's id, a duplicate`);
    await queue.drain();
    const accepted = (await journalEvents(journal.path)).filter((e) => e.type === 'accepted').map((e) => e.id);
    const others = [...accepted, ...queue.list({ app: 'cafeteria' }).map((r) => r.id)].filter((id) => id !== first && id !== back.id);
    assert.deepEqual(others, [], `${when}: no new deploy queued`);
    assert.match((await setup.get('/')).body, /cafeteria v2/, `${when}: production stays on v2`);
  };
  await replay('delivery-v3-replayed', 'after 5,000 deliveries to another app');

  // The compaction drops the v3 trigger's own lines (keep 1: only the v2 deploy).
  assert.ok((await compactJournal(config, journal, { aboveBytes: 0, keep: 1 })).includes(first));
  assert.equal((await journalEvents(journal.path)).filter((e) => e.type === 'accepted' && e.id === first).length, 0, 'its trigger is compacted away');
  await replay('delivery-v3-after-compaction', 'after a compaction');

  // A restart: a new queue reads the same state dir.
  await queue.close();
  queue = await DeployQueue.open({ config });
  await replay('delivery-v3-after-restart', 'after a restart');
  assert.deepEqual(
    (await journalRuns(journal.path)).map((r) => r.id),
    [back.id],
    'the journal holds the v2 deploy (v3 was compacted away), and no other ran',
  );
});
