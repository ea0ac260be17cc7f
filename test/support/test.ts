import { test as nodeTest, type TestContext, type TestOptions } from 'node:test';

/**
 * node:test's `test` with a deadline for every test: TEST_TIMEOUT_MS unless the test names its
 * own. Why not the runner's --test-timeout alone: on Node 20 it bounds a whole file and, when it
 * fires, kills the file's process, so the report names no test and no `t.after` runs (nginx and
 * the apps of the hung test stay up). A test's own timeout fails that test by name, runs its
 * cleanups, and the file goes on. The waits inside a test have shorter deadlines of their own,
 * so a hang fails with what it waited for; this one catches the wait that has none.
 *
 * A failure's `location:` in the report is this file (node records the caller of its test()); the
 * test's name, and an assertion's stack, say where it is.
 *
 * 120 s: the slowest test measured takes 34 s (four runs of `npm test` on 2 cores, two files at a
 * time; "no flapping ..." in test/pipeline/supervisor.test.ts), the next ones 20-30 s.
 */
export const TEST_TIMEOUT_MS = 120_000;

type TestFn = (t: TestContext) => void | Promise<void>;

export function test(name: string, fn: TestFn): void;
export function test(name: string, options: TestOptions, fn: TestFn): void;
export function test(name: string, optionsOrFn: TestOptions | TestFn, maybeFn?: TestFn): void {
  const [options, fn] = typeof optionsOrFn === 'function' ? [{}, optionsOrFn] : [optionsOrFn, maybeFn];
  // The runner awaits every top-level test itself; nothing here needs the promise.
  void nodeTest(name, { timeout: TEST_TIMEOUT_MS, ...options }, async (t) => {
    const last: Cleanup[] = [];
    lastCleanups.set(t, last);
    let ended = false;
    // A body its deadline cut short never reaches `finally`: its last cleanups run with the others.
    t.after(() => (ended ? undefined : runLatestFirst(last)));
    try {
      await fn!(t);
    } finally {
      ended = true;
      // Added when the body is done, so after every t.after it added: run last.
      t.after(() => runLatestFirst(last));
    }
  });
}

type Cleanup = () => Promise<unknown>;
const lastCleanups = new WeakMap<TestContext, Cleanup[]>();

/** Every cleanup runs, the latest first, even when one fails; the first failure is the test's. */
async function runLatestFirst(cleanups: Cleanup[]): Promise<void> {
  const failures: unknown[] = [];
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => failures.push(error));
  if (failures.length > 0) throw failures[0];
}

/**
 * Runs `cleanup` after all the test's other cleanups, the latest first. node runs a test's
 * `t.after` hooks in the order they were added, so a temp dir made before the processes that
 * write into it (duet serve copying node_modules after a deploy) would be removed while they
 * still run: rm then fails with ENOTEMPTY. Outside this file's `test` (a subtest), a plain t.after.
 */
export function afterEverything(t: TestContext, cleanup: Cleanup): void {
  const last = lastCleanups.get(t);
  if (last) last.push(cleanup);
  else t.after(cleanup);
}
