import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { appPaths } from '../../src/config/paths.js';
import { DeployQueue } from '../../src/pipeline/queue.js';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import { coversSameDeploy, type TriggerObserver, type TriggerRequest } from '../../src/pipeline/trigger.js';
import { setupDuet } from '../support/duet.js';
import { pollUntil } from '../../src/util/poll.js';
import { trigger } from '../http/http-harness.js';
import { journalEvents, journalRuns } from '../support/journal.js';

function push(sha: string, ref = 'refs/heads/main', deliveryId: string | null = null): TriggerRequest {
  return { app: 'cafeteria', kind: 'deploy', ref, sha, fromSha: null, source: 'push', deliveryId, requestedBy: 'test' };
}

function recordingObserver(): TriggerObserver & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    queued: (t: Deploy) => events.push(`queued ${t.id} ${t.resolvedSha?.slice(0, 7)}`),
    started: (t: Deploy, color: string | null) => events.push(`started ${t.id} ${color}`),
    finished: (t: Deploy) => events.push(`${t.state} ${t.id} ${t.summary}`),
  };
}

test('a burst of 50 pushes deploys at most twice, and the last push is what ends up live', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {} } });
  const shas: string[] = [];
  for (let i = 2; i <= 51; i += 1) shas.push(await setup.repo.commit({ VERSION: `v${i}\n` }, `v${i}`, { push: false }));
  await setup.repo.push();
  const observer = recordingObserver();
  const queue = await DeployQueue.open({ config: setup.config, observers: [observer] });
  t.after(() => queue.close());

  const ids = [];
  for (const sha of shas) ids.push((await queue.submit(push(sha))).id);
  await queue.drain();

  const records = await journalRuns(setup.app.paths.journal);
  assert.ok(records.length <= 2, `${records.length} deploys ran`);
  assert.equal(records.at(-1)?.resolvedSha, shas.at(-1));
  assert.match((await setup.get('/')).body, /cafeteria v51/);
  const states = ids.map((id) => queue.get(id)!.state);
  assert.equal(states.at(-1), 'succeeded');
  assert.equal(states.filter((s) => s === 'superseded').length, 50 - records.length);
  const superseded = queue.get(ids[1]!)!;
  assert.match(superseded.summary ?? '', /^Superseded by [0-9a-f]{7}$/);
  assert.ok(observer.events.includes(`succeeded ${ids.at(-1)} ${queue.get(ids.at(-1)!)!.summary}`));
});

test('a delivery is accepted once; a release and the tag push of the same tag deploy once', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {}, v2: { VERSION: 'v2\n' } } });
  const queue = await DeployQueue.open({ config: setup.config });
  t.after(() => queue.close());
  const v2 = await setup.repo.revParse('v2^{commit}');

  const first = await queue.submit(push(v2, 'refs/tags/v2', 'delivery-1'));
  assert.equal(first.created, true);
  const again = await queue.submit(push(v2, 'refs/tags/v2', 'delivery-1'));
  assert.deepEqual([again.id, again.created], [first.id, false]);
  const release = await queue.submit({ ...push(v2, 'refs/tags/v2', 'delivery-2'), sha: null, source: 'release' });
  assert.deepEqual([release.id, release.created], [first.id, false]);
  await queue.drain();
  const redelivered = await queue.submit({ ...push(v2, 'refs/tags/v2', 'delivery-2'), sha: null, source: 'release' });
  assert.equal(redelivered.created, false, 'a merged delivery still counts as seen');
  assert.equal((await journalRuns(setup.app.paths.journal)).length, 1);
  assert.equal(queue.get(first.id)!.state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
});

test('observers see queued, started and finished, with the resolved commit; failures carry the step', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {}, v2: { VERSION: 'v2\n', 'behaviour.json': '{"crashOnStart":true}' } } });
  const observer = recordingObserver();
  const queue = await DeployQueue.open({ config: setup.config, observers: [observer] });
  t.after(() => queue.close());
  const v1 = await setup.repo.revParse('v1^{commit}');

  const ok = await queue.submit({ ...push('', 'v1'), sha: null, source: 'manual' });
  await queue.drain();
  const bad = await queue.submit({ ...push('', 'v2'), sha: null, source: 'manual' });
  await queue.drain();
  assert.deepEqual(observer.events.slice(0, 3), [
    `queued ${ok.id} ${v1.slice(0, 7)}`,
    `started ${ok.id} blue`,
    `succeeded ${ok.id} ${queue.get(ok.id)!.summary}`,
  ]);
  assert.match(queue.get(ok.id)!.summary!, /^Live on blue in \d+\.\ds$/);
  assert.equal(queue.get(bad.id)!.state, 'failed');
  assert.match(queue.get(bad.id)!.summary!, /^health failed: green exited before it became healthy/);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
  await assert.rejects(queue.submit({ ...push('x'), app: 'kitchen' }), /no app named "kitchen"/);
});

test('after a restart, an interrupted deploy is converged, the newest waiting trigger runs, an older one is superseded', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {}, v2: { VERSION: 'v2\n' } } });
  const [v1, v2] = [await setup.repo.revParse('v1^{commit}'), await setup.repo.revParse('v2^{commit}')];
  const base = {
    app: 'cafeteria',
    kind: 'deploy',
    source: 'push',
    deliveryId: null,
    requestedBy: 'test',
    supersededBy: null,
    summary: null,
    finishedAt: null,
    color: null,
  };
  const lines = [
    {
      type: 'accepted',
      trigger: {
        ...base,
        id: '20261125-100000-aaaaaa',
        ref: 'refs/tags/v1',
        sha: v1,
        resolvedSha: v1,
        state: 'running',
        receivedAt: '2026-11-25T10:00:00Z',
        startedAt: '2026-11-25T10:00:00Z',
      },
    },
    // Superseded by the next one, but duet stopped before that was written (it is not awaited).
    {
      type: 'accepted',
      trigger: {
        ...base,
        id: '20261125-100001-bbbbbb',
        ref: 'refs/tags/v1',
        sha: v1,
        resolvedSha: v1,
        state: 'queued',
        receivedAt: '2026-11-25T10:00:01Z',
        startedAt: null,
      },
    },
    {
      type: 'accepted',
      trigger: {
        ...base,
        id: '20261125-100002-cccccc',
        ref: 'refs/tags/v2',
        sha: v2,
        resolvedSha: v2,
        state: 'queued',
        receivedAt: '2026-11-25T10:00:02Z',
        startedAt: null,
      },
    },
  ];
  // As duet serve left them: each accepted line holds the trigger's record, one already running.
  const journal = lines.map(({ trigger: record }) => ({ type: 'accepted', id: record.id, at: record.receivedAt, trigger: record }));
  await mkdir(dirname(setup.app.paths.journal), { recursive: true });
  await writeFile(setup.app.paths.journal, journal.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const queue = await DeployQueue.open({ config: setup.config });
  t.after(() => queue.close());
  await queue.drain();
  assert.equal(queue.get('20261125-100000-aaaaaa')!.state, 'succeeded');
  assert.equal(queue.get('20261125-100001-bbbbbb')!.state, 'superseded');
  assert.equal(queue.get('20261125-100001-bbbbbb')!.supersededBy, '20261125-100002-cccccc');
  assert.equal(queue.get('20261125-100002-cccccc')!.state, 'succeeded');
  assert.match((await setup.get('/')).body, /cafeteria v2/);
  assert.equal(queue.list().filter((r) => r.finishedAt === null).length, 0, 'nothing stays pending');
});

test('a queued trigger of an app since removed from the config is closed as errored, in its own journal, once', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {} } });
  const removed = trigger({ app: 'old-menu', ref: 'refs/heads/main' });
  const oldJournal = appPaths(setup.config.stateDir, 'old-menu').journal;
  await new AppJournal('old-menu', oldJournal).append({ type: 'accepted', id: removed.id, at: removed.receivedAt!, trigger: removed });

  const observer = recordingObserver();
  const queue = await DeployQueue.open({ config: setup.config, observers: [observer] });
  await queue.drain();
  await queue.close();
  assert.deepEqual(observer.events, [`errored ${removed.id} internal error: the app is no longer configured`], 'GitHub is told');
  const events = (await journalEvents(oldJournal)).map((event) => event.type);
  assert.deepEqual(events, ['accepted', 'settled'], 'written where its trigger is');

  const again = recordingObserver();
  const reopened = await DeployQueue.open({ config: setup.config, observers: [again] });
  t.after(() => reopened.close());
  await reopened.drain();
  assert.equal(reopened.get(removed.id)?.state, 'errored');
  assert.deepEqual(again.events, [], 'not closed a second time');
});

test("a trigger whose run ended but whose own outcome was never written is settled from the run's end at the next start, not run again; one whose run never ended is resumed", async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {}, v2: { VERSION: 'v2\n' }, v3: { VERSION: 'v3\n' } } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const [v2, v3] = [await setup.repo.revParse('v2^{commit}'), await setup.repo.revParse('v3^{commit}')];
  // Written as duet serve and its run wrote them (another process's AppJournal).
  const journal = new AppJournal(setup.app.name, setup.app.paths.journal);
  const at = new Date().toISOString();
  // v2 failed at its health step (the disk was full), and duet serve died before the trigger's
  // settled line: the journal has the run's end, the trigger says running.
  const failed = trigger({ ref: 'refs/tags/v2', sha: v2, resolvedSha: v2, source: 'push' });
  const error = 'the disk is full (ENOSPC) at health: could not journal the step of deploy x';
  for (const event of [
    { type: 'accepted', id: failed.id, at, trigger: failed },
    { type: 'dequeued', id: failed.id, at },
    { type: 'begin', id: failed.id, at, kind: 'deploy', ref: 'refs/tags/v2', pid: 1 },
    { type: 'step', id: failed.id, at, step: 'health', status: 'started' },
    { type: 'end', id: failed.id, at, outcome: 'failed', error, failedStep: 'health' },
  ] as const)
    await journal.append(event);
  // v3 was being deployed when duet serve died: its run never ended.
  const interrupted = trigger({ ref: 'refs/tags/v3', sha: v3, resolvedSha: v3, source: 'push' });
  for (const event of [
    { type: 'accepted', id: interrupted.id, at, trigger: interrupted },
    { type: 'dequeued', id: interrupted.id, at },
    { type: 'begin', id: interrupted.id, at, kind: 'deploy', ref: 'refs/tags/v3', pid: 1 },
  ] as const)
    await journal.append(event);

  const observer = recordingObserver();
  const queue = await DeployQueue.open({ config: setup.config, observers: [observer] });
  t.after(() => queue.close());
  await queue.drain();
  assert.equal(queue.get(failed.id)?.state, 'failed');
  assert.equal(queue.get(failed.id)?.summary, error, 'the summary of the run that failed');
  assert.ok(observer.events.includes(`failed ${failed.id} ${error}`), `GitHub is told: ${observer.events.join('; ')}`);
  assert.equal(queue.get(interrupted.id)?.state, 'succeeded', 'the interrupted one converged');
  const begun = (await journalEvents(journal.path)).filter((event) => event.type === 'begin').map((event) => event.id);
  assert.equal(begun.filter((id) => id === failed.id).length, 1, 'the failed deploy did not run again');
  assert.equal(begun.filter((id) => id === interrupted.id).length, 2);
  assert.match((await setup.get('/')).body, /cafeteria v3/);
});

test('a waiting rollback covers another only when both undo the same commit', () => {
  const bad = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
  const rollbackOf = (fromSha: string): TriggerRequest => ({
    app: 'cafeteria',
    kind: 'rollback',
    ref: null,
    sha: null,
    fromSha,
    source: 'manual',
    deliveryId: null,
    requestedBy: 'API',
  });
  const waiting = trigger({ ...rollbackOf(bad.slice(0, 7)) });
  assert.equal(coversSameDeploy(waiting, rollbackOf(bad)), true, 'one commit, abbreviated or whole');
  // Asked after the live commit changed: merged into the waiting one, it would be refused with it.
  assert.equal(coversSameDeploy(waiting, rollbackOf('ffeeddc')), false, 'a rollback of another commit is one of its own');
  assert.equal(
    coversSameDeploy({ ...waiting, state: 'running' }, rollbackOf(bad)),
    false,
    'a running one may change what is live: this one is checked after it',
  );
});

test('the color a trigger is said to start on is the one its deploy picks: with the live color dead and the standby answering through the fallback, the dead one', async (t) => {
  const setup = await setupDuet(t, { tags: { v1: {}, v2: { VERSION: 'v2\n' }, v3: { VERSION: 'v3\n' } } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  process.kill(JSON.parse((await setup.succeed(['status', '--json'])).stdout).colors.green.pid as number, 'SIGKILL');
  const fallback = await pollUntil(async () => (/cafeteria v1/.test((await setup.get('/').catch(() => undefined))?.body ?? '') ? true : undefined), {
    timeoutMs: 10_000,
  });
  assert.ok(fallback, 'blue answers through the fallback');

  const observer = recordingObserver();
  const queue = await DeployQueue.open({ config: setup.config, observers: [observer] });
  t.after(() => queue.close());
  const { id } = await queue.submit(push(await setup.repo.revParse('v3^{commit}'), 'refs/tags/v3'));
  await queue.drain();

  // blue is made live first, and green, the dead one, is updated: the deploy goes live on green.
  assert.equal(queue.get(id)?.state, 'succeeded', queue.get(id)?.summary ?? '');
  assert.deepEqual(
    observer.events.filter((e) => e.startsWith('started')),
    [`started ${id} green`],
  );
  assert.equal(queue.get(id)?.color, 'green');
  assert.match((await setup.get('/')).body, /cafeteria v3/);
});
