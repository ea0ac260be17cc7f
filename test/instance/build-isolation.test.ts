import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';

/**
 * A build runs next to the live color: at the lowest CPU and I/O priority, first in line for the
 * OOM killer, and, killed for memory, named as such while the live color keeps answering. What is
 * checked is what the kernel holds for the build's real processes, read from /proc while it runs.
 */

/** SCHED_IDLE in sched.h; field 41 of /proc/<pid>/stat is the policy, field 19 the nice value. */
const SCHED_IDLE = 5;

function statFields(pid: number): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

interface Priority {
  policy: number;
  oomScoreAdj: number;
  ioClass: string;
}

async function priorityOf(pid: number): Promise<Priority> {
  // Fields after "(comm)" start at field 3: policy (41) is index 38.
  const policy = Number(statFields(pid)[38]);
  const oomScoreAdj = Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8'));
  // The I/O class is not in /proc; ionice asks the kernel (ioprio_get) for it.
  const ioClass = (await execa('ionice', ['-p', String(pid)])).stdout.trim();
  return { policy, oomScoreAdj, ioClass };
}

test("the build's processes, and what they start, run at idle CPU and I/O priority with oom_score_adj 1000", async (t) => {
  const probe = await tempDir(t, 'duet-build-probe');
  // The build records its shell and a child it started, then waits for the test to have looked.
  const build = `sleep 300 >/dev/null 2>&1 & echo $! > ${probe}/child.pid; echo $$ > ${probe}/build.pid; until [ -f ${probe}/go ]; do sleep 0.05; done`;
  const setup = await setupDuet(t, { app: { build: JSON.stringify(build) }, tags: { v1: {} } });
  const deploy = setup.start(['deploy', '--ref', 'v1']);
  const pids = await pollUntil(
    async () => {
      const [build, child] = await Promise.all([readFile(join(probe, 'build.pid'), 'utf8'), readFile(join(probe, 'child.pid'), 'utf8')]).catch(() => []);
      return build && child ? [Number(build), Number(child)] : undefined;
    },
    { timeoutMs: 30_000 },
  );
  try {
    assert.ok(pids, `the build did not start:\n${deploy.output()}`);
    for (const pid of pids) {
      const seen = await priorityOf(pid);
      assert.deepEqual(seen, { policy: SCHED_IDLE, oomScoreAdj: 1000, ioClass: 'idle' }, `process ${pid} of the build`);
    }
    // duet itself is left as it was: only the build is lowered.
    const own = await priorityOf(process.pid);
    assert.notEqual(own.policy, SCHED_IDLE);
  } finally {
    await writeFile(join(probe, 'go'), '');
  }
  const result = await deploy.done;
  assert.equal(result.code, 0, result.stderr);
  assert.match((await setup.get('/')).body, /cafeteria v1/);
});

test('a build killed by SIGKILL is named as killed for lack of memory; the deploy fails at update and the live color answers', async (t) => {
  // v2's build is killed as the OOM killer kills: SIGKILL to the process that allocates (node here).
  const build = `if [ -f oom ]; then node -e "process.kill(process.pid, 'SIGKILL')"; fi`;
  const setup = await setupDuet(t, { app: { build: JSON.stringify(build) }, tags: { v1: {}, v2: { VERSION: 'v2\n', oom: '' } } });
  await setup.succeed(['deploy', '--ref', 'v1']);
  const failed = await setup.duet(['deploy', '--ref', 'v2']);
  assert.equal(failed.code, 1, failed.stdout);
  assert.match(failed.stderr, /the build was killed for lack of memory \(limit: [^)]+\)/);
  assert.match(failed.stderr, /raise build_limits\.memory_max, add swap, or deploy a prebuilt artifact/);
  const page = await setup.get('/');
  assert.equal(page.status, 200);
  assert.match(page.body, /cafeteria v1/);
  const [last] = JSON.parse((await setup.duet(['history', '--json'])).stdout) as Array<{ id: string; outcome: string }>;
  assert.equal(last?.outcome, 'failed');
  const failedSteps = (await readFile(setup.app.paths.journal, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { id: string; type: string; step?: string; status?: string })
    .filter((event) => event.id === last.id && event.type === 'step' && event.status === 'failed');
  assert.deepEqual(
    failedSteps.map((event) => event.step),
    ['update'],
  );
});

test('build_limits.min_free_memory_mb more than the machine has: the update waits its time, then fails with a hint', async (t) => {
  const setup = await setupDuet(t, {
    app: { build_limits: '{ min_free_memory_mb: 100000000, min_free_memory_wait_s: 0.5 }' },
    tags: { v1: {} },
  });
  const failed = await setup.duet(['deploy', '--ref', 'v1']);
  assert.equal(failed.code, 1, failed.stdout);
  assert.match(failed.stderr, /MiB of memory available after 0.5 s; build_limits.min_free_memory_mb asks for 100000000/);
  assert.match(failed.stderr, /add swap, lower build_limits.min_free_memory_mb/);
});
