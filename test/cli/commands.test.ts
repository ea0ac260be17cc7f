import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentObserver } from '../../src/pipeline/observer.js';
import { DeployRun } from '../../src/pipeline/run.js';
import { setupDuet } from '../support/duet.js';
import { assertLeftoversGone, leaveLeftovers } from '../support/leftovers.js';

test('identify commands print one bare value, or exit 1 with nothing on stdout', async (t) => {
  const { duet, succeed, app } = await setupDuet(t);
  for (const command of ['enabled-instance', 'disabled-instance', 'enabled-port', 'disabled-port']) {
    const result = await duet([command]);
    assert.equal(result.code, 1, command);
    assert.equal(result.stdout, '', command);
    assert.match(result.stderr, /no color is connected to nginx yet/);
  }
  assert.equal((await duet(['pid', 'blue'])).code, 1);

  await succeed(['deploy', '--ref', 'v1']);
  assert.equal((await duet(['enabled-instance'])).stdout, 'blue\n');
  assert.equal((await duet(['disabled-instance'])).stdout, 'green\n');
  assert.equal((await duet(['enabled-port'])).stdout, `${app.ports.blue}\n`);
  assert.equal((await duet(['disabled-port'])).stdout, `${app.ports.green}\n`);
  assert.equal((await duet(['enabled-instance', 'cafeteria'])).stdout, 'blue\n', 'the app may be named');
  const pid = await duet(['pid', 'blue']);
  assert.match(pid.stdout, /^\d+\n$/);
  assert.equal((await duet(['pid', 'cafeteria', 'blue'])).stdout, pid.stdout);
  assert.equal((await duet(['pid', 'green'])).code, 1);
});

test('the instance commands prepare, start, connect and stop a color by hand', async (t) => {
  const { duet, succeed, get, repo } = await setupDuet(t);
  await succeed(['deploy', '--ref', 'v1']);
  const v2 = await repo.revParse('v2^{commit}');

  const refused = await duet(['connect-to-nginx', 'green']);
  assert.equal(refused.code, 1, 'an instance that is not running is not connected');
  assert.match(refused.stderr, /green is not healthy .*nginx was left as it was/);
  assert.equal((await duet(['start-instance', 'green'])).code, 1, 'nothing prepared to start yet');

  const updated = await duet(['update-instance', 'green', '--ref', 'v2']);
  assert.equal(updated.code, 0, updated.stderr);
  assert.equal(updated.stdout, `${v2}\n`);
  const started = await duet(['start-instance', 'green']);
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stdout, /^\d+\n$/);
  assert.equal((await duet(['pid', 'green'])).stdout, started.stdout);
  assert.match((await get('/')).body, /cafeteria v1/, 'starting green does not switch traffic');

  await succeed(['connect-to-nginx', 'green']);
  assert.match((await get('/')).body, /cafeteria v2/);
  assert.equal((await duet(['enabled-instance'])).stdout, 'green\n');

  const live = await duet(['stop-instance', 'green']);
  assert.equal(live.code, 1, 'the live color is protected');
  assert.match(live.stderr, /stopping it takes cafeteria down/);
  assert.equal((await duet(['update-instance', 'green', '--ref', 'v1'])).code, 1, 'updating the live color is refused');
  assert.equal((await duet(['stop-instance', 'blue'])).stdout, 'stopped\n');
  assert.equal((await duet(['stop-instance', 'blue'])).stdout, 'not-running\n', 'stopping twice is harmless');
  assert.equal((await duet(['pid', 'blue'])).code, 1);
  assert.equal((await get('/')).status, 200);
});

test('update-instance leaves the tree of the new commit: the old build output, stray and edited files go, node_modules stays', async (t) => {
  const { succeed, app } = await setupDuet(t);
  await succeed(['deploy', '--ref', 'v1']);
  await succeed(['update-instance', 'green', '--ref', 'v2']);
  const dir = app.paths.checkout.green;

  // Cleaned away while the next commit is fetched.
  await leaveLeftovers(dir);

  const updated = await succeed(['update-instance', 'green', '--ref', 'v1']);
  const commands = updated.stderr
    .split('\n')
    .filter((line) => line.startsWith('$ git '))
    .map((line) => line.split(' ')[2]);
  // The clean runs while v1 is fetched (their order varies), always before the checkout, once.
  assert.deepEqual(
    commands.filter((c) => c !== 'fetch'),
    ['clean', 'checkout'],
    commands.join(', '),
  );
  assert.ok(commands.includes('fetch'), 'green never had v1');
  assert.equal(await readFile(join(dir, 'VERSION'), 'utf8'), await readFile(join(app.paths.checkout.blue, 'VERSION'), 'utf8'));
  await assertLeftoversGone(dir);
});

test('usage and config errors exit 2 with a clear message', async (t) => {
  const { duet, dir, configPath } = await setupDuet(t, { tags: { v1: {} } });
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['pid'], /expected \[app\] <color>/],
    [['pid', 'purple'], /"purple" is not a color/],
    [['deploy', '--reff', 'v1'], /Unknown option '--reff'/],
    [['status', 'kitchen'], /no app named "kitchen"/],
    [['update-instance', 'green'], /needs --ref REF/],
    [['deploy', '--ref=-x'], /resolve: .*-/],
    [['deploy', '--ref', 'v1;touch /tmp/x'], /resolve: /],
  ];
  for (const [args, message] of cases) {
    const result = await duet(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  const bad = join(dir, 'bad.yml');
  await writeFile(bad, 'apps:\n  cafeteria:\n    clone_url: x\n    listen: [1]\n');
  const invalid = await duet(['--config', bad, 'status']);
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /bad\.yml: apps\.cafeteria\.listen: /);
  assert.ok(configPath);
});

test('history and logs read the journal and the per-deploy log', async (t) => {
  const { duet, succeed } = await setupDuet(t);
  await succeed(['deploy', '--ref', 'v1']);
  const failed = await duet(['deploy', '--ref', 'no-such-tag']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /no-such-tag/);
  const lines = (await duet(['history'])).stdout.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /failed .*no-such-tag .*resolve/);
  assert.match(lines[1]!, /success .*v1 .* -> blue/);
  const [{ id }] = JSON.parse((await duet(['history', '--json', '--limit', '1'])).stdout);
  const log = await duet(['logs', id]);
  assert.equal(log.code, 0);
  assert.match(log.stdout, /step resolve failed/);
  assert.equal((await duet(['logs'])).stdout, log.stdout, 'the latest deploy by default');
  assert.equal((await duet(['logs', '20990101-000000-abcdef'])).code, 1);
});

test("history shows a deploy that met a bug of duet's as errored, not as failed at a step it did not fail", async (t) => {
  const { duet, config, app } = await setupDuet(t);
  const run = new DeployRun(config, app, 'deploy', silentObserver);
  await run.begin('v1');
  const bug = Object.assign(new TypeError('The "path" argument must be of type string. Received undefined'), { code: 'ERR_INVALID_ARG_TYPE' });
  await run.end('failed', await run.step('verify', 'check the public port', () => Promise.reject(bug)).catch((error: unknown) => error));
  const history = await duet(['history']);
  assert.equal(history.code, 0, history.stderr);
  assert.match(history.stdout, /^\S+ {2}errored .* internal error in duet at verify: The "path" argument/m);
  assert.doesNotMatch(history.stdout, /null:/);
});
