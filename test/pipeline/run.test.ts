import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { DuetError, InternalError } from '../../src/errors.js';
import { outcomeOfRun } from '../../src/pipeline/queue-run.js';
import { silentObserver } from '../../src/pipeline/observer.js';
import { DeployRun } from '../../src/pipeline/run.js';
import { tempDir } from '../support/tmp.js';
import { journalDeploys, journalRuns } from '../support/journal.js';

async function run(t: Parameters<typeof tempDir>[0]): Promise<DeployRun> {
  const state = await tempDir(t, 'duet-state');
  const config = parseConfig(`state_dir: ${JSON.stringify(join(state, 'state'))}\napps:\n  cafeteria:\n    clone_url: /srv/cafeteria.git\n`, 'duet.yml');
  const deploy = new DeployRun(config, pickApp(config, undefined), 'deploy', silentObserver);
  await deploy.begin('v1');
  return deploy;
}

test("a step's failure is told apart from a fault of duet itself", async (t) => {
  const deploy = await run(t);
  // The machine refused: the deploy failed at that step.
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  await assert.rejects(
    deploy.step('update', 'update blue', () => Promise.reject(full)),
    (error: unknown) => error instanceof DuetError && error.step === 'update' && /no space left/.test(error.message),
  );
  // A bug in duet: not the deploy's failure, and said so.
  await assert.rejects(
    deploy.step('switch', 'point nginx at blue', async () => {
      const missing = undefined as unknown as { color: string };
      return { value: missing.color };
    }),
    (error: unknown) =>
      error instanceof InternalError && !(error instanceof DuetError) && /internal error in duet at switch: .*a bug in duet/.test(error.message),
  );
  // Node's own error codes are duet's bugs too, not the machine refusing.
  await assert.rejects(
    deploy.step('verify', 'check the public port', () =>
      Promise.reject(Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' })),
    ),
    (error: unknown) => error instanceof InternalError && !(error instanceof DuetError),
  );
  await deploy.end('failed', new Error('x'));
  const record = (await journalRuns(deploy.app.paths.journal)).at(-1)!;
  assert.deepEqual(
    record.steps.map((s) => [s.name, s.status]),
    [
      ['update', 'failed'],
      ['switch', 'failed'],
      ['verify', 'failed'],
    ],
  );
  assert.match(
    await readFile(join(deploy.app.paths.deployLogs, `${deploy.id}.log`), 'utf8'),
    /TypeError: Cannot read properties of undefined/,
    'the stack is in the deploy log',
  );
});

test("a run ended by a fault of duet's is journaled errored, by the error-kinds table; the deploy's own failure stays failed, with its step", async (t) => {
  const nodeBug = Object.assign(new TypeError('The "path" argument must be of type string. Received undefined'), { code: 'ERR_INVALID_ARG_TYPE' });
  const buggy = await run(t);
  const internal = await buggy.step('update', 'update blue', () => Promise.reject(nodeBug)).catch((error: unknown) => error);
  await buggy.end('failed', internal);
  const errored = (await journalDeploys(buggy.app.paths.journal)).find((d) => d.id === buggy.id)!;
  assert.deepEqual([errored.outcome, errored.failedStep], ['errored', null]);
  assert.equal(errored.state, 'errored', 'a deploy of the CLI that met a bug shows errored, as a queued one does');
  assert.equal(outcomeOfRun(errored)?.state, 'errored');

  const refused = await run(t);
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const failure = await refused.step('update', 'update blue', () => Promise.reject(full)).catch((error: unknown) => error);
  await refused.end('failed', failure);
  const failed = (await journalDeploys(refused.app.paths.journal)).find((d) => d.id === refused.id)!;
  assert.deepEqual([failed.outcome, failed.failedStep], ['failed', 'update']);
  assert.equal(failed.state, 'failed');
  assert.deepEqual(outcomeOfRun(failed), {
    state: 'failed',
    summary: 'the disk is full (ENOSPC) at update: ENOSPC: no space left on device, write',
  });
});
