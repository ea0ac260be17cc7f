import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';
import { tempDir } from '../support/tmp.js';
import { mountTmpfs } from '../support/tmpfs.js';
import type { TestContext } from 'node:test';

interface Listed {
  sha: string;
  ref: string;
  bad: { deploy: string } | null;
  kept: boolean;
  live: boolean;
  colors: string[];
  node: { version: string; modules: string };
  released: boolean;
}

/**
 * A setup whose install and build append to a marker file: a rollback that ran either (or npm)
 * would leave a line in it. Deploys `tags` in order and returns their commits.
 */
async function deployed(t: TestContext, tags: string[], keep: number, extra: { top?: Record<string, string> } = {}) {
  const marker = join(await tempDir(t, 'duet-marker'), 'steps.log');
  const setup = await setupDuet(t, {
    app: {
      keep_releases: String(keep),
      install: JSON.stringify(`mkdir -p node_modules && echo "install $DUET_REVISION" >> ${marker}`),
      build: JSON.stringify(`echo "build $DUET_REVISION" >> ${marker}`),
    },
    tags: Object.fromEntries(tags.map((tag) => [tag, { VERSION: `${tag}\n` }])),
    ...extra,
  });
  const shas: Record<string, string> = {};
  for (const tag of tags) {
    shas[tag] = await setup.repo.revParse(`${tag}^{commit}`);
    await setup.succeed(['deploy', '--ref', tag]);
  }
  return { setup, marker, shas };
}

const listed = async (setup: DuetSetup): Promise<Listed[]> => JSON.parse((await setup.succeed(['releases', '--json'])).stdout) as Listed[];
const servedVersion = async (setup: DuetSetup): Promise<string | undefined> => /cafeteria (v\d)/.exec((await setup.get('/')).body)?.[1];

test('a rollback three releases back restores the kept tree in under 2 s: no install, no build, no npm', async (t) => {
  const { setup, marker, shas } = await deployed(t, ['v1', 'v2', 'v3', 'v4'], 4);
  const kept = await listed(setup);
  assert.deepEqual(
    kept.map((r) => r.sha),
    [shas.v4, shas.v3, shas.v2, shas.v1],
    'every deploy that passed its watch is kept, newest first',
  );
  assert.equal(kept[0]!.live, true);
  assert.equal(kept[0]!.node.modules, process.versions.modules);
  const before = await readFile(marker, 'utf8');
  assert.match(before, /build/, 'the deploys did build');

  // npm, npx, pnpm, yarn and corepack on the rollback's PATH write to the marker too, should anything run them.
  const shims = await tempDir(t, 'duet-npm-shims');
  for (const tool of ['npm', 'npx', 'pnpm', 'yarn', 'corepack']) {
    await writeFile(join(shims, tool), `#!/bin/sh\necho "${tool} $*" >> ${marker}\nexit 1\n`, { mode: 0o755 });
  }
  const back = await setup.succeed(['rollback', '--steps', '3'], { PATH: `${shims}:${process.env.PATH}` });
  const seconds = Number(/ in (\d+\.\d+)s/.exec(back.stdout)?.[1]);
  assert.match(back.stdout, new RegExp(`rolled back from ${shas.v4!.slice(0, 7)} to ${shas.v1!.slice(0, 7)} on blue`));
  assert.ok(seconds < 2, `the rollback took ${seconds} s`);
  if (process.env.DUET_TEST_TIMING) process.stderr.write(`rollback --steps 3: ${seconds} s\n`);
  assert.equal(await readFile(marker, 'utf8'), before, 'no install, no build, no npm ran');
  assert.equal(await servedVersion(setup), 'v1');

  const history = JSON.parse((await setup.succeed(['history', '--json', '--limit', '1'])).stdout) as Array<{
    kind: string;
    steps: Array<{ name: string; detail: string | null }>;
  }>;
  const steps = history[0]!.steps;
  assert.equal(history[0]!.kind, 'rollback');
  assert.match(steps.find((s) => s.name === 'update')?.detail ?? '', /kept tree of .* moved into blue/);

  const after = await listed(setup);
  assert.equal(after.find((r) => r.sha === shas.v4)?.bad !== null, true, 'the release the rollback left is marked bad');
  const v1 = after.find((r) => r.sha === shas.v1)!;
  assert.equal(v1.live, true);
  assert.equal(v1.kept, true, 'kept again after the rollback passed its watch');
});

test('a rollback killed right after the kept tree moved into the color converges when run again: the release is restored, not refused', async (t) => {
  const { setup, marker, shas } = await deployed(t, ['v1', 'v2', 'v3'], 3);
  const before = await readFile(marker, 'utf8');
  const killed = await setup.duet(['rollback', '--to', 'v1'], { DUET_CRASH_AT: 'restore:moved' });
  assert.notEqual(killed.code, 0, 'killed at restore:moved');
  assert.equal(await servedVersion(setup), 'v3', 'the live color untouched');
  const again = await setup.succeed(['rollback', '--to', 'v1']);
  assert.match(again.stdout, new RegExp(`to ${shas.v1!.slice(0, 7)}`));
  assert.equal(await servedVersion(setup), 'v1');
  assert.equal(await readFile(marker, 'utf8'), before, 'no install, no build');
  assert.equal((await listed(setup)).find((r) => r.sha === shas.v1)?.kept, true, 'kept again after its watch');
});

test('two rollbacks --steps 1 walk back two releases instead of toggling', async (t) => {
  const { setup, marker, shas } = await deployed(t, ['v1', 'v2', 'v3'], 3);
  const before = await readFile(marker, 'utf8');
  await setup.succeed(['rollback', '--steps', '1']);
  assert.equal(await servedVersion(setup), 'v2');
  const second = await setup.succeed(['rollback', '--steps', '1']);
  assert.match(second.stdout, new RegExp(`to ${shas.v1!.slice(0, 7)}`));
  assert.equal(await servedVersion(setup), 'v1', 'back to v1, not forth to v3');
  assert.equal(await readFile(marker, 'utf8'), before);
  const refused = await setup.duet(['rollback', '--steps', '1']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /has 0 good kept releases before/);
  // Named, a bad release is still restored: the operator asked for it.
  await setup.succeed(['rollback', '--to', 'v3']);
  assert.equal(await servedVersion(setup), 'v3');
});

test('pruning keeps keep_releases and every release a color holds', async (t) => {
  const { setup, shas } = await deployed(t, ['v1', 'v2', 'v3'], 1);
  const kept = await listed(setup);
  assert.deepEqual(
    kept.map((r) => r.sha),
    [shas.v3, shas.v2],
    'v3, the newest; v2 too, which the standby color holds; v1 pruned',
  );
  assert.deepEqual(kept[1]!.colors, ['green']);
  const releases = join(setup.app.paths.root, 'releases');
  assert.equal(existsSync(join(releases, shas.v1!)), false);
  assert.equal(existsSync(join(releases, shas.v2!, 'tree', 'VERSION')), true);
  // A rollback to v2, which the standby holds already (used as it is), and a deploy of v1 over v3:
  // v1 the newest, v2 held by the live color, v3 pruned.
  await setup.succeed(['rollback', '--to', shas.v2!.slice(0, 9)]);
  const history = JSON.parse((await setup.succeed(['history', '--json', '--limit', '1'])).stdout) as Array<{ steps: Array<{ name: string; status: string }> }>;
  assert.equal(history[0]!.steps.find((s) => s.name === 'update')?.status, 'skipped', 'green holds v2 already');
  await setup.succeed(['deploy', '--ref', 'v1']);
  assert.deepEqual(
    (await listed(setup)).map((r) => r.sha),
    [shas.v1, shas.v2],
  );
});

test('a kept release built for another Node.js ABI, or from before a breaking release, is refused with a hint', async (t) => {
  const { setup, shas } = await deployed(t, ['v1', 'v2', 'v3'], 3);
  const recordPath = join(setup.app.paths.root, 'releases', shas.v1!, 'release.json');
  const record = JSON.parse(await readFile(recordPath, 'utf8')) as { node: { version: string; modules: string } };
  await writeFile(recordPath, JSON.stringify({ ...record, node: { version: 'v16.20.2', modules: '93' } }));
  const refused = await setup.duet(['rollback', '--to', 'v1']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(
    refused.stderr,
    new RegExp(`built by Node.js v16.20.2 \\(ABI 93\\), the installed Node.js is ${process.version} \\(ABI ${process.versions.modules}\\)`),
  );
  assert.match(refused.stderr, new RegExp(`duet deploy cafeteria --ref ${shas.v1}`));
  assert.equal(await servedVersion(setup), 'v3', 'nothing changed');

  const v2Path = join(setup.app.paths.root, 'releases', shas.v2!, 'release.json');
  const v2 = JSON.parse(await readFile(v2Path, 'utf8')) as Record<string, unknown>;
  await writeFile(v2Path, JSON.stringify({ ...v2, bytes: 2 ** 60 }));
  const noRoom = await setup.duet(['rollback', '--to', 'v2']);
  assert.equal(noRoom.code, 1, noRoom.stderr);
  assert.match(noRoom.stderr, /not enough free disk space to restore v2 \([0-9a-f]{7}\) and keep it again: it needs \d+ MiB, \d+ MiB are free/);
  await writeFile(v2Path, JSON.stringify(v2));

  await setup.succeed(['deploy', '--ref', 'v2', '--breaking']);
  const crossing = await setup.duet(['rollback', '--to', 'v3']);
  assert.equal(crossing.code, 1, crossing.stderr);
  assert.match(crossing.stderr, /is from before the breaking release .*: a rollback to it is refused/);
  await setup.succeed(['rollback', '--to', 'v3', '--force']);
  assert.equal(await servedVersion(setup), 'v3');
});

test('a restore that fails puts the kept tree back: the release stays kept and restorable', async (t) => {
  const { setup, shas } = await deployed(t, ['v1', 'v2', 'v3'], 3);
  const behaviour = join(setup.app.paths.root, 'releases', shas.v1!, 'tree', 'behaviour.json');
  await writeFile(behaviour, '{"crashOnStart":true}');
  const failed = await setup.duet(['rollback', '--to', 'v1']);
  assert.equal(failed.code, 1, failed.stderr);
  assert.equal(await servedVersion(setup), 'v3', 'v3 stays live');
  const v1 = (await listed(setup)).find((r) => r.sha === shas.v1);
  assert.equal(v1?.kept, true, 'the tree went back into releases/');
  assert.equal(v1?.bad, null);
  assert.equal(existsSync(behaviour), true);
  await writeFile(behaviour, '{}');
  await setup.succeed(['rollback', '--to', 'v1']);
  assert.equal(await servedVersion(setup), 'v1');
});

test(
  'a release the disk has no room for is not kept, said, and the deploy succeeds',
  { skip: process.getuid?.() !== 0 && 'needs root (mounts a tmpfs)' },
  async (t) => {
    // 48 MiB: the state dir fits, a tree and the 64 MiB kept free beside it do not.
    // mountTmpfs's after hook unmounts and removes it.
    const stateDir = await mkdtemp(join(tmpdir(), 'duet-releases-'));
    const setup = await setupDuet(t, { stateDir, app: { keep_releases: '3' } });
    // Mounted after setupDuet, so that its after hook (nginx and the colors stopped) runs first,
    // while their pid files are still there to be read (full-disk.test.ts does the same).
    await mountTmpfs(t, '48m', { at: stateDir });
    const deployed = await setup.succeed(['deploy', '--ref', 'v1']);
    assert.match(
      deployed.stderr,
      /could not keep the release blue runs for a rollback: not enough free disk space to keep [0-9a-f]{7} for a rollback: it needs \d+ MiB, \d+ MiB are free/,
    );
    assert.match((await setup.get('/')).body, /cafeteria v1/);
    assert.match((await setup.succeed(['releases'])).stdout, /no release kept yet/);
  },
);

test('GET /apps/:app/releases lists the kept releases and POST /apps/:app/rollback {"steps"} or {"to"} restores one', async (t) => {
  const port = await freePort();
  const { setup, marker, shas } = await deployed(t, ['v1', 'v2', 'v3'], 3, { top: { server: `{ listen: "127.0.0.1:${port}" }` } });
  const serve = await startServe(t, setup.configPath, port);
  const before = await readFile(marker, 'utf8');

  assert.equal((await fetch(`${serve.url}/apps/cafeteria/releases`)).status, 401, 'behind the token');
  const { status, body } = await getJson(`${serve.url}/apps/cafeteria/releases`);
  assert.equal(status, 200);
  assert.deepEqual(
    (body.releases as Listed[]).map((r) => [r.sha, r.live]),
    [
      [shas.v3, true],
      [shas.v2, false],
      [shas.v1, false],
    ],
  );

  const post = (payload: unknown) =>
    fetch(`${serve.url}/apps/cafeteria/rollback`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
  const unknown = await post({ from: shas.v3, to: 'v9' });
  assert.equal(unknown.status, 409, 'refused at once: no kept release is v9');
  assert.match(((await unknown.json()) as { error: string }).error, /no kept release of cafeteria is "v9"/);
  const both = await post({ from: shas.v3, to: 'v1', steps: 1 });
  assert.equal(both.status, 400);
  assert.equal((await post({ from: shas.v1, steps: 2 })).status, 409, 'the from check still holds');

  const accepted = await post({ from: shas.v3!.slice(0, 7), steps: 2 });
  assert.equal(accepted.status, 202);
  const { deploy } = (await accepted.json()) as { deploy: string };
  const ended = await pollUntil(
    async () => {
      const answer = await getJson(`${serve.url}/deploys/${deploy}`);
      return answer.body?.finishedAt ? answer.body : undefined;
    },
    { timeoutMs: 30_000 },
  );
  assert.equal(ended?.state, 'succeeded', JSON.stringify(ended));
  assert.equal(await servedVersion(setup), 'v1');
  assert.equal(await readFile(marker, 'utf8'), before, 'no install and no build ran');
  const listing = (await getJson(`${serve.url}/apps/cafeteria/releases`)).body.releases as Listed[];
  assert.equal(listing.find((r) => r.sha === shas.v3)?.bad?.deploy, deploy);
  await serve.stop();
});
