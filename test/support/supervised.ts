import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup, type SetupOptions } from './duet.js';
import { startGitHubServer, type GitHubServer } from './github-server.js';
import { freePort } from './ports.js';
import { startServe, type ServeProcess } from './serve.js';
import { tempDir } from './tmp.js';

export const REPO = 'inu-appcenter/cafeteria-server';

export interface Supervised {
  setup: DuetSetup;
  serve: ServeProcess;
  github: GitHubServer;
  status(): Promise<any>;
  pidOf(color: 'blue' | 'green'): Promise<number | undefined>;
  /**
   * Changes the sample app's behaviour while it runs (test/fixtures/sample-app/server.js,
   * CONTROL_DIR): `name` or `name.<color>` set to `value`, or removed with undefined.
   */
  control(name: string, value: string | undefined): Promise<void>;
}

/**
 * v1 on blue and v2 on green (live), both warm, then a real duet serve supervising them. serve
 * is killed first when the test ends, so that no restart of its runs while the colors are stopped.
 */
export async function supervised(t: TestContext, options: SetupOptions & { v2?: Record<string, string> } = {}): Promise<Supervised> {
  let serve: ServeProcess | undefined;
  t.after(async () => serve?.crash());
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const controlDir = await tempDir(t, 'duet-control');
  const setup = await setupDuet(t, {
    ...options,
    app: { env: `{ CONTROL_DIR: "${controlDir}" }`, ...options.app },
    tags: { v1: {}, v2: { VERSION: 'v2\n', ...options.v2 } },
    top: {
      server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }`,
      github: `{ api_url: "${github.url}", deployments: true }`,
      ...options.top,
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1']);
  await setup.succeed(['deploy', '--ref', 'v2']);
  serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });
  const status = async () => JSON.parse((await setup.succeed(['status', '--json'])).stdout);
  return {
    setup,
    serve,
    github,
    status,
    pidOf: async (color) => (await status()).colors[color].pid ?? undefined,
    control: async (name, value) => {
      const file = join(controlDir, name);
      await (value === undefined ? rm(file, { force: true }) : writeFile(file, value));
    },
  };
}

export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const value = await pollUntil(check, { timeoutMs, maxIntervalMs: 100 });
  assert.ok(value !== undefined, `timed out waiting until ${what}`);
  return value;
}
