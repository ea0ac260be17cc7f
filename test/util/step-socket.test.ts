import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { test } from '../support/test.js';
import { CommandFailedError, DuetError } from '../../src/errors.js';
import { pollUntil } from '../../src/util/poll.js';
import { runArgv } from '../../src/util/run.js';
import { askStepSocket } from '../../src/util/step-socket.js';
import { cliPath } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';

/**
 * The step socket as systemd runs it (Accept=yes): every connection starts `duet step-runner`
 * with the connection as its stdin and stdout. Here a server does what systemd does, with the
 * real runner; it runs as the test's own user, so the switch of user is the server suite's
 * (test/server/app-user.test.ts) to show.
 */
async function stepSocket(t: TestContext, o: { credentials?: string } = {}): Promise<{ path: string; dir: string; runners: ChildProcess[] }> {
  const dir = await tempDir(t, 'duet-step');
  const path = join(dir, 'step.sock');
  const runners: ChildProcess[] = [];
  // An app's own step socket: systemd's LoadCredential= puts its env files there.
  const env = o.credentials === undefined ? process.env : { ...process.env, CREDENTIALS_DIRECTORY: o.credentials };
  const server: Server = createServer((connection: Socket) => {
    runners.push(spawn(process.execPath, [cliPath(), 'step-runner'], { stdio: [connection, connection, 'inherit'], env }));
    // The runner has its own copy of the descriptor now, as under systemd.
    connection.destroy();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    for (const runner of runners) runner.kill('SIGKILL');
    await new Promise((resolve) => server.close(resolve));
  });
  return { path, dir, runners };
}

test('a step through the socket streams its output, gets the built environment and the runner user home, and returns the output', async (t) => {
  const { path, dir } = await stepSocket(t);
  const seen: string[] = [];
  process.env.DUET_WEBHOOK_SECRET = 'never-in-a-step';
  t.after(() => delete process.env.DUET_WEBHOOK_SECRET);
  const out = await runArgv(['sh', '-c', 'echo "step $APP_VAR in $PWD"; echo "secret=${DUET_WEBHOOK_SECRET:-none}"; echo "home=$HOME" >&2'], {
    step: 'install',
    cwd: dir,
    // duet's own HOME travels in the built environment; the runner replaces it with its user's.
    env: { APP_VAR: 'from-the-app', HOME: '/nonexistent/duet-home' },
    forApp: true,
    stepSocket: path,
    output: { write: (chunk) => seen.push(chunk) },
  });
  assert.match(out, new RegExp(`^step from-the-app in ${dir}$`, 'm'));
  assert.match(out, /^secret=none$/m, "duet's secrets do not cross the socket");
  assert.match(out, new RegExp(`^home=${(await import('node:os')).userInfo().homedir}$`, 'm'), "HOME is the runner's user's");
  assert.equal(seen.join(''), out, 'the output sink saw every byte, in order');
  await assert.rejects(runArgv(['sh', '-c', 'true'], { step: 'build', stepSocket: path }), /forApp/, 'only the app code goes through it');
});

test("an app's own step socket: the runner adds the env files' values asked for, masks every one in what it sends back, and names a missing secret", async (t) => {
  const credentials = await tempDir(t, 'duet-step-credentials');
  await writeFile(join(credentials, 'env-0'), 'API_TOKEN=sekret-value-123\nOTHER=first-other-secret\nSHORT=abc\nDUET_COLOR=from-the-file\n');
  await writeFile(join(credentials, 'env-1'), 'OTHER=override-secret-999\nEMPTY=\n');
  const { path, dir, runners } = await stepSocket(t, { credentials });
  const seen: string[] = [];
  // build_env: [API_TOKEN]; the value comes out in two writes, the second after a pause.
  const build = await runArgv(
    ['sh', '-c', 'echo "token=$API_TOKEN other=${OTHER:-unset} short=$SHORT"; printf "split sekret-"; sleep 0.2; printf "value-123 done\\n"'],
    {
      step: 'build',
      cwd: dir,
      env: { DUET_COLOR: 'blue' },
      forApp: true,
      stepSocket: path,
      envFiles: { pick: ['API_TOKEN'], keep: ['DUET_COLOR'] },
      output: { write: (chunk) => seen.push(chunk) },
    },
  );
  assert.match(build, /^token=\*\*\* other=unset short=$/m, 'only the build_env name, masked');
  assert.match(build, /^split \*\*\* done$/m, 'a value split across writes is masked whole');
  assert.doesNotMatch(seen.join(''), /sekret-value-123/);
  // The release: every value, under what duet set.
  const release = await runArgv(['sh', '-c', 'echo "$DUET_COLOR $OTHER" | tr a-z A-Z; echo "$OTHER"'], {
    step: 'release',
    cwd: dir,
    env: { DUET_COLOR: 'blue' },
    forApp: true,
    stepSocket: path,
    envFiles: { pick: '*', keep: ['DUET_COLOR'] },
  });
  assert.equal(release, 'BLUE OVERRIDE-SECRET-999\n***\n', 'the files over env, duet over the files; the later file wins; every value masked');
  const [answer] = await askStepSocket(path, { check: ['API_TOKEN', 'MISSING', 'EMPTY', 'SHORT', 'IN_ENV'], env: { IN_ENV: 'set in duet.yml' } }, 'update');
  assert.deepEqual(answer, { missing: ['MISSING', 'EMPTY'] });
  const masked = await askStepSocket(path, { mask: 'app says sekret-value-123 and override-secret-999 and abc\n', env: {} }, 'health');
  assert.deepEqual(masked, [{ out: 'app says *** and *** and abc\n' }, { exit: { code: 0, signal: null } }]);
  const exited = await pollUntil(async () => (runners.every((runner) => runner.exitCode !== null) ? true : undefined), { timeoutMs: 5000 });
  assert.ok(exited, 'every runner exits once its answer is sent, those that ran no command too');
});

test('a failing step through the socket is a CommandFailedError with the exit status and the last output', async (t) => {
  const { path, dir } = await stepSocket(t);
  const error = await runArgv(['sh', '-c', 'echo "npm ERR! missing script: build"; exit 3'], { step: 'build', cwd: dir, forApp: true, stepSocket: path }).catch(
    (e: unknown) => e,
  );
  assert.ok(error instanceof CommandFailedError, String(error));
  assert.equal(error.exitStatus, 3);
  assert.match(error.outputTail, /missing script: build/);
  const missing = await runArgv(['sh', '-c', 'no-such-tool --version'], { step: 'build', cwd: dir, forApp: true, stepSocket: path }).catch((e: unknown) => e);
  assert.ok(missing instanceof CommandFailedError);
  assert.equal(missing.exitStatus, 127);
  assert.match(missing.message + (missing.hint ?? ''), /`no-such-tool` was not found/);
});

test('a step that outlives its timeout is killed with everything it started: the hang-up ends it', async (t) => {
  const { path, dir } = await stepSocket(t);
  const pidFile = join(dir, 'background.pid');
  const started = Date.now();
  const error = await runArgv(['sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`], {
    step: 'install',
    cwd: dir,
    forApp: true,
    stepSocket: path,
    timeoutMs: 3000,
  }).catch((e: unknown) => e);
  assert.ok(error instanceof CommandFailedError, String(error));
  assert.equal(error.exitStatus, undefined, 'reported as killed');
  assert.ok(Date.now() - started < 8000);
  const pid = Number(await readFile(pidFile, 'utf8'));
  const gone = await pollUntil(async () => (existsSync(`/proc/${pid}`) ? undefined : true), { timeoutMs: 5000, initialIntervalMs: 10 });
  assert.ok(gone, `the background sleep ${pid} survived its step`);
});

test('what a step created with its own mode is left group-writable, for duet to remove on the next deploy', async (t) => {
  const { path, dir } = await stepSocket(t);
  await runArgv(['sh', '-c', 'mkdir -m 755 made && touch made/file && chmod 644 made/file'], { step: 'build', cwd: dir, forApp: true, stepSocket: path });
  assert.equal((await stat(join(dir, 'made'))).mode & 0o020, 0o020);
  assert.equal((await stat(join(dir, 'made', 'file'))).mode & 0o020, 0o020);
});

test('the runner refuses a request that is not the protocol, and an unreachable socket says what to start', async (t) => {
  const { path, dir } = await stepSocket(t);
  const answer = await new Promise<string>((resolve, reject) => {
    let text = '';
    const socket = connect(path, () => socket.write('{"v":99,"cwd":"/","argv":["true"],"env":{}}\n'));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(answer, /^\{"error":"step-runner: protocol version 99, this runner speaks 1: run duet install again"\}\n$/);
  const error = await runArgv(['sh', '-c', 'true'], { step: 'install', cwd: dir, forApp: true, stepSocket: join(dir, 'nothing.sock') }).catch(
    (e: unknown) => e,
  );
  assert.ok(error instanceof DuetError, String(error));
  assert.match(error.message, /cannot reach the step runner at .*nothing\.sock \(ENOENT\)/);
  assert.match(error.hint ?? '', /systemctl start duet-step\.socket/);
});

for (const through of ['the step socket', 'a child of duet'] as const) {
  test(`a release's timeout through ${through}: SIGTERM to the whole group first, SIGKILL graceMs later, reported as timed out`, async (t) => {
    const socket = through === 'the step socket' ? await stepSocket(t) : undefined;
    const dir = socket?.dir ?? (await tempDir(t, 'duet-step'));
    // A child that notes the SIGTERM and carries on, as a migration rolling back would.
    const child = `node -e 'process.on("SIGTERM", () => require("fs").writeFileSync("termed", String(process.pid))); setInterval(() => {}, 1000)'`;
    const command = `echo migrating; ${child}`;
    const error = await runArgv(['sh', '-c', command], {
      shown: command,
      step: 'release',
      cwd: dir,
      forApp: true,
      stepSocket: socket?.path,
      group: join(dir, 'step.pid'),
      // Long enough for node to start and take SIGTERM on a loaded machine (it took over 1 s).
      timeoutMs: 4000,
      graceMs: 1500,
    }).catch((e: unknown) => e);
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.timedOutMs, 4000);
    assert.match(error.message, /release: `echo migrating; .*` did not finish within 4 s and was stopped\n--- last output ---\nmigrating/);
    const pid = Number(await pollUntil(async () => readFile(join(dir, 'termed'), 'utf8').catch(() => undefined), { timeoutMs: 5000 }));
    assert.ok(pid > 0, 'the child got SIGTERM');
    const gone = await pollUntil(async () => (existsSync(`/proc/${pid}`) ? undefined : true), { timeoutMs: 5000, initialIntervalMs: 10 });
    assert.ok(gone, `the child ${pid} that ignored SIGTERM was killed`);
  });
}
