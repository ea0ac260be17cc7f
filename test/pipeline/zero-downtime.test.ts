import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { setupDuet } from '../support/duet.js';
import { startLoad } from '../support/load.js';

// port mode reloads nginx, whose old workers close idle keep-alive connections: clients that do
// not retry may see that (measured in the bench, see FACTS.md), so the test uses Connection: close.
// socket mode never reloads, so keep-alive clients must see nothing at all.
const cases = [
  { switchMode: 'port', keepAlive: false },
  { switchMode: 'socket', keepAlive: true },
] as const;

for (const { switchMode, keepAlive } of cases) {
  test(`requests through nginx during deploys and a rollback see no failure (${switchMode}, keep-alive ${keepAlive})`, async (t) => {
    const setup = await setupDuet(t, {
      switchMode,
      tags: { v1: { 'behaviour.json': '{"startDelayMs":200}' }, v2: { VERSION: 'v2\n' } },
    });
    await setup.succeed(['deploy', '--ref', 'v1']);
    const load = startLoad(setup.listenPort, { concurrency: 4, keepAlive });
    try {
      await setup.succeed(['deploy', '--ref', 'v2']);
      await setup.succeed(['rollback']);
      await setup.succeed(['deploy', '--ref', 'v2']);
    } finally {
      await load.stop();
    }
    const report = load.report;
    t.diagnostic(`${report.requests} requests: ${JSON.stringify(report.versions)}`);
    assert.equal(report.errors + report.non2xx, 0, `failed requests: ${report.errors} errors, ${report.non2xx} non-2xx, first: ${report.firstError}`);
    assert.ok(report.requests > 100, `enough load to mean something (${report.requests})`);
    assert.ok((report.versions.v1 ?? 0) > 0 && (report.versions.v2 ?? 0) > 0, 'both versions answered');
  });
}
