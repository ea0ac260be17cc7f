import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { waitUntilHealthy, checkHealth } from '../../src/instance/health.js';
import { identify } from '../../src/instance/process-identity.js';
import { runnerOf } from '../../src/instance/runner.js';
import { sampleAppDir } from '../support/git-repo.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';
import { cp } from 'node:fs/promises';

async function appIn(t: import('node:test').TestContext, extra = '') {
  const dir = await tempDir(t, 'duet-runner');
  const [blue, green] = [await freePort(), await freePort()];
  const config = parseConfig(
    `state_dir: ${dir}\napps:\n  cafe:\n    clone_url: /nowhere\n    ports: { blue: ${blue}, green: ${green} }\n    start: exec node server.js\n    stop_timeout_s: 1\n${extra}`,
    'test.yml',
  );
  const app = pickApp(config, 'cafe');
  await cp(sampleAppDir(), app.paths.checkout.blue, { recursive: true });
  t.after(() => runnerOf(app).stop('blue'));
  return app;
}

const revision = { sha: 'a'.repeat(40), ref: 'refs/tags/v1' };

test('a started color runs detached, gets its environment, and stops with its whole group', async (t) => {
  const app = await appIn(t, '    env: { GREETING: hello }\n');
  const record = await runnerOf(app).start('blue', revision);
  await waitUntilHealthy(app, 'blue', { isAlive: async () => (await runnerOf(app).running('blue')) !== undefined });
  assert.equal((await checkHealth(app, 'blue')).state, 'healthy');
  assert.equal((await runnerOf(app).start('blue', revision)).pid, record.pid, 'starting a running color is a no-op');

  const environ = (await readFile(`/proc/${record.pid}/environ`, 'utf8')).split('\0');
  for (const expected of [`PORT=${app.ports.blue}`, 'HOST=127.0.0.1', 'DUET_COLOR=blue', `DUET_REVISION=${revision.sha}`, 'GREETING=hello']) {
    assert.ok(environ.includes(expected), `${expected} in the instance's environment`);
  }
  const stat = await readFile(`/proc/${record.pid}/stat`, 'utf8');
  const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  assert.equal(Number(pgrp), record.pid, 'its own process group');
  assert.equal(Number(session), record.pid, 'its own session: it survives the terminal and duet');

  assert.equal(await runnerOf(app).stop('blue'), 'stopped');
  assert.equal(await identify(record.pid), undefined);
  assert.equal(await runnerOf(app).running('blue'), undefined);
  assert.equal(await runnerOf(app).stop('blue'), 'not-running');
});

test('a pidfile whose pid now belongs to another process is not trusted, and that process is never signalled', async (t) => {
  const app = await appIn(t);
  const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => stranger.kill('SIGKILL'));
  await new Promise((resolve) => stranger.once('spawn', resolve));
  const realStart = (await identify(stranger.pid!))?.startTime;
  assert.ok(realStart);
  const pidfile = app.paths.pidfile.blue;
  await mkdir(dirname(pidfile), { recursive: true });
  // The pid is right, the start time is that of the process duet once started: a reused pid.
  await writeFile(pidfile, JSON.stringify({ pid: stranger.pid, startTime: String(Number(realStart) - 1000), color: 'blue', ...revision, startedAt: '' }));
  assert.equal(await runnerOf(app).running('blue'), undefined);
  assert.equal(await runnerOf(app).stop('blue'), 'not-running');
  assert.equal((await identify(stranger.pid!))?.startTime, realStart, 'the stranger still runs');
});

test('an app that ignores SIGTERM is killed after stop_timeout_s', async (t) => {
  const app = await appIn(t);
  await writeFile(join(app.paths.checkout.blue, 'behaviour.json'), '{"ignoreSigterm":true}');
  const record = await runnerOf(app).start('blue', revision);
  await waitUntilHealthy(app, 'blue', { isAlive: async () => true });
  const started = Date.now();
  assert.equal(await runnerOf(app).stop('blue'), 'killed');
  assert.ok(Date.now() - started >= 1000, 'it got its grace period');
  assert.equal(await identify(record.pid), undefined);
});

test('a port held by a process duet did not start is reported, not fought over', async (t) => {
  const app = await appIn(t);
  const { createServer } = await import('node:net');
  const squatter = createServer().listen(app.ports.blue, '127.0.0.1');
  t.after(() => squatter.close());
  await new Promise((resolve) => squatter.once('listening', resolve));
  await assert.rejects(runnerOf(app).start('blue', revision), /is already taken by a process duet did not start/);
});
