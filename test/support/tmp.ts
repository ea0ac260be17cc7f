import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { afterEverything } from './test.js';

/**
 * A temp dir removed when the test ends, pass or fail, after its other cleanups (the processes
 * that write into it stopped first). It is world-traversable (0755) because
 * nginx's workers run as `nobody` when the tests run as root and must reach the sockets inside.
 */
export async function tempDir(t: TestContext, label = 'duet'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `${label}-`));
  await chmod(dir, 0o755);
  afterEverything(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}
