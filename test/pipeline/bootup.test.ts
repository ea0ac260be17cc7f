import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';

for (const switchMode of ['port', 'socket'] as const) {
  test(`bootup after a "reboot" brings back the live color, its standby and the proxy (${switchMode})`, async (t) => {
    const { duet, succeed, get } = await setupDuet(t, { switchMode });
    const nothing = await duet(['bootup']);
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.match(nothing.stdout, /nothing deployed yet/);

    await succeed(['deploy', '--ref', 'v1']);
    await succeed(['deploy', '--ref', 'v2']);
    // A reboot: every process is gone, the files stay.
    const down = await duet(['down']);
    assert.equal(down.code, 0, down.stderr);
    await assert.rejects(get('/'), 'nothing answers after the "reboot"');
    assert.equal((await duet(['pid', 'green'])).code, 1);

    const up = await duet(['bootup']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /cafeteria: green live, standby started/);
    assert.match((await get('/')).body, /cafeteria v2/);
    const status = JSON.parse((await duet(['status', '--json'])).stdout);
    assert.equal(status.enabled, 'green');
    assert.equal(status.colors.green.healthy, true);
    assert.equal(status.colors.blue.healthy, true, 'standby: keep brings the standby back for instant rollback');

    const again = await duet(['bootup']);
    assert.match(again.stdout, /green live, standby running/, 'bootup is idempotent');

    // kill -9 of the live color without duet serve: nothing restarts it, but nginx's fallback,
    // the standby bootup brought back, answers every request.
    process.kill(status.colors.green.pid, 'SIGKILL');
    const dead = await pollUntil(
      async () => {
        const now = JSON.parse((await duet(['status', '--json'])).stdout);
        return now.colors.green.state === 'down' ? now : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.ok(dead, 'status says the live color is down');
    assert.equal(dead.serving, 'blue');
    assert.equal(dead.supervisedBy, null);
    for (let i = 0; i < 10; i += 1) {
      const page = await get('/');
      assert.equal(page.status, 200);
      assert.match(page.body, /cafeteria v1/);
    }
    const text = (await duet(['status'])).stdout;
    assert.match(text, /warning: green \(live\) is DOWN.*blue answers through nginx's fallback/);
    assert.match(text, /not supervised: duet serve is not running/);
  });
}

test('deploying the live commit again after everything stopped converges too', async (t) => {
  const { duet, succeed, get } = await setupDuet(t, { tags: { v1: {} } });
  await succeed(['deploy', '--ref', 'v1']);
  await succeed(['down']);
  const again = await duet(['deploy', '--ref', 'v1']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already live on blue/);
  assert.match((await get('/')).body, /cafeteria v1/);
});
