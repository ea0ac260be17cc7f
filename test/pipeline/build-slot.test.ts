import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { runnerOf } from '../../src/instance/runner.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

/**
 * build_limits.concurrency (1 by default): two apps deployed at the same moment build one after
 * the other. Seen from the builds themselves: each records when it started and ended, with the
 * kernel's clock, and the two spans must not overlap; the one that waited says so in its output.
 */

/** A build that takes a while and writes its own start and end (nanoseconds) to `file`. */
const timedBuild = (file: string): string => JSON.stringify(`date +%s%N > ${file}; sleep 2; date +%s%N >> ${file}`);

test('two apps deploying at once build one after the other; the second says it waits for a build slot', async (t) => {
  const probe = await tempDir(t, 'duet-build-spans');
  const setup = await setupDuet(t, { app: { build: timedBuild(join(probe, 'cafeteria')) }, tags: { v1: {} } });
  // A second app of the same repository, on ports of its own.
  const [listen, blue, green] = [await freePort(), await freePort(), await freePort()];
  const second = [
    '  canteen:',
    `    clone_url: ${setup.app.clone_url}`,
    `    listen: "127.0.0.1:${listen}"`,
    `    ports: { blue: ${blue}, green: ${green} }`,
    "    install: 'mkdir -p node_modules'",
    `    build: ${timedBuild(join(probe, 'canteen'))}`,
    '    start: exec node server.js',
    '    health: { path: /health, timeout_s: 10, watch_s: 0.3 }',
    '    drain_s: 0',
    '    stop_timeout_s: 2',
  ].join('\n');
  const yaml = `${await readFile(setup.configPath, 'utf8')}${second}\n`;
  await writeFile(setup.configPath, yaml);
  const canteen = pickApp(parseConfig(yaml, setup.configPath), 'canteen');
  setup.afterStop(async () => {
    await runnerOf(canteen)
      .stop('blue')
      .catch(() => {});
    await runnerOf(canteen)
      .stop('green')
      .catch(() => {});
  });

  const deploys = [setup.start(['deploy', 'cafeteria', '--ref', 'v1']), setup.start(['deploy', 'canteen', '--ref', 'v1'])];
  const results = await Promise.all(deploys.map((deploy) => deploy.done));
  for (const result of results) assert.equal(result.code, 0, result.stderr);

  const span = async (app: string): Promise<[bigint, bigint]> => {
    const [start, end] = (await readFile(join(probe, app), 'utf8')).trim().split('\n').map(BigInt);
    return [start!, end!];
  };
  const spans = [await span('cafeteria'), await span('canteen')].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  assert.ok(spans[0]![1] <= spans[1]![0], `the builds overlapped: ${spans.map(([s, e]) => `${s}..${e}`).join(', ')}`);
  const waited = deploys
    .map((deploy) => deploy.output())
    .filter((output) => /waiting for a build slot \(build_limits\.concurrency: 1\): build of \w+/.test(output));
  assert.equal(waited.length, 1, `one deploy says it waits:\n${deploys.map((deploy) => deploy.output()).join('\n---\n')}`);
});
