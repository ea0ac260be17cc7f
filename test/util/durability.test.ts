import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { postWebhook, startServe, tagPush } from '../support/serve.js';
import { tempDir } from '../support/tmp.js';

const O_DSYNC = 0o10000;

/** One system call as strace -f wrote it, a call split by another thread's joined again. */
interface Call {
  /** The line at which it returned: what came before it in the file happened before. */
  at: number;
  startedAt: number;
  name: string;
  fd: number;
  text: string;
}

function calls(trace: string): Call[] {
  const lines = trace.split('\n');
  const pending = new Map<string, { startedAt: number; head: string }>();
  const done: Call[] = [];
  lines.forEach((line, index) => {
    const match = /^(\d+)\s+(.*)$/.exec(line);
    if (!match) return;
    const [, pid, rest] = match as unknown as [string, string, string];
    let head = rest;
    let startedAt = index;
    if (rest.endsWith('<unfinished ...>')) {
      pending.set(pid, { startedAt: index, head: rest });
      return;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      const start = pending.get(pid);
      pending.delete(pid);
      if (!start) return;
      head = start.head.replace(/<unfinished \.\.\.>$/, '') + resumed[2];
      startedAt = start.startedAt;
    }
    const call = /^(\w+)\((\d+)?/.exec(head);
    if (call) done.push({ at: index, startedAt, name: call[1]!, fd: Number(call[2] ?? -1), text: head });
  });
  return done;
}

/** The fd a process has open on `path`, and its open flags (/proc/<pid>/fdinfo). */
function openFlags(pid: number, path: string): { fd: number; flags: number } | undefined {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== path) continue;
    const flags = /^flags:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
    return { fd: Number(fd), flags: Number.parseInt(flags ?? '0', 8) };
  }
  return undefined;
}

test("a delivery's 202 leaves duet serve only after its journal line is on disk (O_DSYNC write, or write then fsync)", async (t) => {
  const port = await freePort();
  const setup = await setupDuet(t, {
    tags: { v1: {}, v2: { VERSION: 'v2\n' } },
    app: { deploy_on: '{ branches: [main], tags: ["v*"] }' },
    top: { server: `{ listen: "127.0.0.1:${port}" }` },
  });
  const serve = await startServe(t, setup.configPath, port);
  const pid = serve.child.pid!;
  const out = join(await tempDir(t, 'duet-strace'), 'trace');
  // Attached to the running serve: every thread (libuv's pool does the file writes), and what
  // it writes, long enough to tell a journal line and an HTTP status line apart.
  const strace = execa('strace', ['-f', '-qq', '-s', '4096', '-e', 'trace=openat,write,writev,pwrite64,fsync,fdatasync', '-o', out, '-p', String(pid)], {
    reject: false,
  });
  t.after(async () => {
    strace.kill('SIGINT');
    await strace;
  });
  const attached = await pollUntil(
    async () => {
      await fetch(`${serve.url}/healthz`);
      return (await readFile(out, 'utf8').catch(() => '')).includes('HTTP/1.1 200') ? true : undefined;
    },
    { timeoutMs: 20_000 },
  );
  assert.ok(attached, 'strace attached to duet serve');

  const answer = await postWebhook(serve.url, 'push', tagPush('inu-appcenter/cafeteria-server', 'v2', await setup.repo.revParse('v2^{commit}')), 'durable-1');
  assert.equal(answer.status, 202);
  const journal = openFlags(pid, setup.app.paths.journal);
  strace.kill('SIGINT');
  await strace;
  await serve.stop(); // after the deploy the push started: the checkout is the test's to remove

  const trace = calls(await readFile(out, 'utf8'));
  const accepted = trace.find((c) => /^write(v)?\(/.test(c.text) && c.text.includes('HTTP/1.1 202'));
  assert.ok(accepted, 'the 202 was written');
  const lineWrite = trace.find((c) => /^(write|writev|pwrite64)$/.test(c.name) && c.text.includes('durable-1') && c.at < accepted.startedAt);
  assert.ok(lineWrite, "the delivery's journal line was written before the 202");
  const fd = lineWrite.fd;
  // O_DSYNC: the write returns once the line is on disk (the open may predate the trace: /proc says).
  const opened = [...trace].reverse().find((c) => c.name === 'openat' && c.at < lineWrite.at && / = (\d+)$/.exec(c.text)?.[1] === String(fd));
  const dsync = opened ? /O_DSYNC/.test(opened.text) : journal?.fd === fd && (journal.flags & O_DSYNC) !== 0;
  const synced = trace.some((c) => (c.name === 'fsync' || c.name === 'fdatasync') && c.fd === fd && c.at > lineWrite.at && c.at < accepted.startedAt);
  assert.ok(dsync || synced, `the line reached the disk before the 202: O_DSYNC ${dsync}, fsync before the answer ${synced}`);
});
