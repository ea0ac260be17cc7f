import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil } from '../../src/util/poll.js';
import { hasExited, procStat } from '../../src/util/proc.js';
import { CommandFailedError } from '../../src/errors.js';
import { runArgv } from '../../src/util/run.js';
import { tempDir } from '../support/tmp.js';

test('exit 127: the missing command is named, from dash, bash and npm run output alike', async () => {
  // A command that prints what a shell would have and exits 127, as one that was not found does.
  const commandNotFoundHint = async (output: string): Promise<string> => {
    const error = await runArgv(['sh', '-c', 'printf "%s" "$1" >&2; exit 127', 'sh', output], { step: 'build' }).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(error instanceof CommandFailedError, String(error));
    return error.hint ?? '';
  };
  assert.match(
    await commandNotFoundHint('> build\n> nest build\n\nsh: 1: nest: not found\n'),
    /^`nest` was not found \(exit 127\): a tool the build needs that package.json does not list/,
  );
  assert.match(await commandNotFoundHint('bash: line 1: tsc: command not found\n'), /^`tsc` was not found/);
  assert.match(await commandNotFoundHint('sh: vite: not found'), /^`vite` was not found/);
  assert.match(await commandNotFoundHint('nothing recognisable'), /^a command was not found \(exit 127\)/);
});

test('a step run in its own group: what it left running in the background is killed when it returns', async (t) => {
  const dir = await tempDir(t, 'duet-run');
  // The background job's pid is the step's output; its output goes elsewhere, or the step would wait for it.
  const output = await runArgv(['sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], { step: 'install', group: join(dir, 'step.pid') });
  const pid = Number(output.trim());
  assert.ok(pid > 1, `the step printed its background job's pid: ${output}`);
  const running = (): boolean => {
    const stat = procStat(pid);
    return stat !== undefined && !hasExited(stat);
  };
  t.after(() => {
    if (running()) process.kill(pid, 'SIGKILL');
  });
  const gone = await pollUntil(async () => (running() ? undefined : true), { timeoutMs: 5000 });
  assert.ok(gone, `the background sleep (pid ${pid}) still runs after its step returned`);
  assert.equal(existsSync(join(dir, 'step.pid')), false, 'the group record is removed');
});
