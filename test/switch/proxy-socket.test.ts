import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { chmod, readlink, stat } from 'node:fs/promises';
import type { Color } from '../../src/config/schema.js';
import { DuetError } from '../../src/errors.js';
import { stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { markBeforeReload, stillAccepting } from '../../src/switch/nginx-workers.js';
import { childrenOf } from '../../src/util/proc.js';
import { pollUntil } from '../../src/util/poll.js';
import { connectToNginx, switchOf } from '../../src/switch/switch.js';
import { get, startBackend, switchFixture, workerPid } from './fixture.js';

test('socket mode: switching renames the symlink, nginx follows without a reload', async (t) => {
  const f = await switchFixture(t, { mode: 'socket' });
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  assert.equal(await switchOf(f.app).configuredColor(f.config), undefined);

  await connectToNginx(f.app, f.config, 'blue');
  assert.equal(await readlink(f.app.paths.liveSocket), 'blue.sock');
  assert.equal(await switchOf(f.app).configuredColor(f.config), 'blue');
  assert.equal(await switchOf(f.app).servingColor(), 'blue');
  assert.deepEqual(await get(f.app), { status: 200, body: 'blue', color: undefined });
  const worker = await workerPid(f.config);

  await connectToNginx(f.app, f.config, 'green');
  assert.equal(await readlink(f.app.paths.liveSocket), 'green.sock');
  assert.equal(await switchOf(f.app).configuredColor(f.config), 'green');
  assert.equal(await switchOf(f.app).servingColor(), 'green');
  // The very next request already reaches green: nothing asynchronous is left to wait for.
  assert.equal((await get(f.app)).body, 'green');
  assert.equal(await workerPid(f.config), worker, 'the switch did not reload nginx');
});

test('socket mode: a switch that rewrites the conf (fallback turned off) returns only once no worker of the old conf takes connections', async (t) => {
  const f = await switchFixture(t, { mode: 'socket' });
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'blue');
  const mark = markBeforeReload(f.config)!;
  assert.ok(mark.workers.length > 0, 'the workers of the first conf');
  // The conf changes (no standby upstream), so nginx reloads: its old workers serve the old conf
  // for about 100 ms after the new ones start, and the switch is not done while they accept.
  await connectToNginx({ ...f.app, fallback: false }, f.config, 'blue');
  assert.ok(
    childrenOf(mark.master).some((pid) => !mark.workers.some((w) => w.pid === pid)),
    'nginx reloaded',
  );
  assert.deepEqual(stillAccepting(mark), [], 'no worker from before the reload still accepts');
});

test('socket mode: a color whose socket does not exist is refused and nothing changes', async (t) => {
  const f = await switchFixture(t, { mode: 'socket' });
  await startBackend(f, 'blue');
  await connectToNginx(f.app, f.config, 'blue');
  await assert.rejects(connectToNginx(f.app, f.config, 'green'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'switch');
    assert.match(error.message, /green\.sock does not exist/);
    assert.match(error.hint ?? '', /nginx still serves blue/);
    return true;
  });
  assert.equal(await readlink(f.app.paths.liveSocket), 'blue.sock');
  assert.equal((await get(f.app)).body, 'blue');
});

test('socket mode: the rename comes first, and is undone when nginx then rejects its config', async (t) => {
  const f = await switchFixture(t, { mode: 'socket', listen: '999.1.1.1:8080' });
  await startBackend(f, 'blue');
  await assert.rejects(connectToNginx(f.app, f.config, 'blue'), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'switch');
    assert.match(error.message, /host not found in "999\.1\.1\.1:8080"/);
    return true;
  });
  await assert.rejects(readlink(f.app.paths.liveSocket), /ENOENT/, 'a first live.sock is removed again');
  assert.equal(await switchOf(f.app).configuredColor(f.config), undefined);
});

test('socket mode: keep-alive clients see no failure across 5 switches', async (t) => {
  const f = await switchFixture(t, { mode: 'socket' });
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'blue');
  const worker = await workerPid(f.config);

  // Four clients on pooled keep-alive connections: the connections opened before a switch are
  // reused after it, which is exactly what a reload would break and a symlink rename does not.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const seen: Record<string, number> = { blue: 0, green: 0 };
  const failures: string[] = [];
  let total = 0;
  let reused = 0;
  let running = true;
  const client = async (): Promise<void> => {
    while (running) {
      try {
        const answer = await get(f.app, '/', agent, (yes) => void (reused += yes ? 1 : 0));
        if (answer.status !== 200) failures.push(`status ${answer.status}`);
        seen[answer.body] = (seen[answer.body] ?? 0) + 1;
      } catch (error) {
        failures.push(String(error));
      }
      total += 1;
    }
  };
  const clients = Promise.all([client(), client(), client(), client()]);
  /** Wait (by polling, not sleeping) until the clients got `count` more answers from `color`. */
  const answered = async (color: Color, count: number): Promise<void> => {
    const goal = (seen[color] ?? 0) + count;
    const ok = await pollUntil(async () => ((seen[color] ?? 0) >= goal || failures.length > 0 ? true : undefined), { timeoutMs: 10_000 });
    assert.ok(ok, `no ${count} answers from ${color}`);
  };
  try {
    await answered('blue', 50);
    for (const color of ['green', 'blue', 'green', 'blue', 'green'] as const) {
      await connectToNginx(f.app, f.config, color);
      await answered(color, 50);
    }
  } finally {
    running = false;
    await clients;
  }
  assert.deepEqual(failures, [], `${failures.length} of ${total} requests failed`);
  assert.ok(total >= 300, `only ${total} requests`);
  assert.ok(reused > total / 2, `only ${reused} of ${total} requests reused a connection`);
  assert.deepEqual(Object.keys(seen).sort(), ['blue', 'green'], 'every answer came from blue or green');
  assert.equal(await workerPid(f.config), worker, 'no switch reloaded nginx');
});

test('socket mode: switching to the configured color again brings it back after nginx was stopped (bootup)', async (t) => {
  const f = await switchFixture(t, { mode: 'socket' });
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'green');
  await stopManagedNginx(f.config);
  await assert.rejects(get(f.app), /ECONNREFUSED/);
  assert.equal(await switchOf(f.app).servingColor({ timeoutMs: 500 }), undefined, 'no answer, no color');

  assert.equal(await switchOf(f.app).configuredColor(f.config), 'green', 'the files still name green');
  await switchOf(f.app).switchTo(f.config, 'green');
  await switchOf(f.app).verify('green');
  assert.equal((await get(f.app)).body, 'green');
  assert.equal(await switchOf(f.app).servingColor(), 'green');
});

test('socket mode: the switch opens the socket to nginx; a socket closed again fails verification', async (t) => {
  const f = await switchFixture(t, { mode: 'socket' });
  await startBackend(f, 'blue', { reachable: false });
  await connectToNginx(f.app, f.config, 'blue');
  assert.equal((await stat(f.app.paths.socket.blue)).mode & 0o777, 0o666);

  // As if the instance restarted and re-created its socket under its umask.
  await chmod(f.app.paths.socket.blue, 0o755);
  await assert.rejects(switchOf(f.app).verify('blue', { timeoutMs: 300 }), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.equal(error.step, 'verify');
    assert.match(error.message, /last: HTTP 502/);
    assert.match(error.hint ?? '', /need write permission on the socket/);
    return true;
  });
});
