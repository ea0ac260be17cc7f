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
  void nodeTest(name, { timeout: TEST_TIMEOUT_MS, ...options }, fn);
}
