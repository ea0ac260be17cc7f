import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startContainer, test } from './container.js';

test('a Debian 12 container boots with systemd as PID 1, nginx up, node from the host', async (t) => {
  const machine = await startContainer(t);
  const report = await machine.boot();
  t.diagnostic(`boot: ${report.ms} ms to ${report.state}${report.failed.length ? ` (failed: ${report.failed.join(', ')})` : ''}`);
  assert.deepEqual(report.failed, [], `units failed at boot: ${report.failed.join(', ')}`);

  assert.equal(await machine.run(['cat', '/proc/1/comm']), 'systemd');
  assert.match(await machine.run(['cat', '/etc/os-release']), /VERSION_ID="12"/);
  assert.equal(
    await machine.run(['systemctl', 'is-active', 'nginx.service', 'dbus.service', 'systemd-journald.service', 'systemd-logind.service']),
    'active\nactive\nactive\nactive',
  );
  assert.equal(await machine.run(['node', '--version']), process.version);
  assert.match(await machine.run(['npm', '--version']), /^\d+\.\d+\.\d+$/);
  // The tree in the cache is never written: a file made inside lands in the overlay only.
  await machine.run(['touch', '/etc/duet-boot-test']);
  assert.equal(existsSync(`${machine.tree.dir}/etc/duet-boot-test`), false);

  const off = await machine.poweroff();
  t.diagnostic(`poweroff: ${off} ms`);
});
