import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { parseConfig } from '../../src/config/load.js';
import { triggerEvent } from '../../src/notify/messages.js';
import { Notifier } from '../../src/notify/notifier.js';
import { readTargetSecrets, sendNotification } from '../../src/notify/send.js';
import { captureLog, SHA, trigger } from '../github/helpers.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const failed = trigger({
  state: 'failed',
  summary: 'health failed: GET /health answered 500 after 10 s',
  failedStep: 'health',
  startedAt: '2024-05-01T10:00:01.000Z',
  finishedAt: '2024-05-01T10:00:13.500Z',
  color: 'green',
});

/** A config with one notify target per `targets` entry, its URL (and secret) in 0600 files. */
async function rig(t: TestContext, targets: Array<{ format: string; url: string; extra?: string }>) {
  const dir = await tempDir(t, 'duet-notify');
  const lines: string[] = [];
  for (const [index, target] of targets.entries()) {
    const urlFile = join(dir, `url-${index}`);
    await writeFile(urlFile, `${target.url}\n`, { mode: 0o600 });
    let entry = `  - { format: ${target.format}, url_file: ${urlFile}${target.extra ?? ''}`;
    if (target.format === 'webhook') {
      await writeFile(join(dir, 'secret'), SECRET, { mode: 0o600 });
      entry += `, secret_file: ${join(dir, 'secret')}`;
    }
    lines.push(`${entry} }`);
  }
  const yaml = [
    `state_dir: ${join(dir, 'state')}`,
    'server: { public_url: "https://deploy.example.com/" }',
    'notify:',
    ...lines,
    'apps:',
    '  cafeteria:',
    '    clone_url: /nowhere/cafeteria.git',
  ].join('\n');
  const config = parseConfig(yaml, join(dir, 'duet.yml'));
  const log = captureLog();
  const outboxPath = join(dir, 'state', 'notify-outbox.ndjson');
  const notifiers: Notifier[] = [];
  t.after(() => Promise.all(notifiers.map((notifier) => notifier.close())));
  const open = async (): Promise<Notifier> => {
    const notifier = await Notifier.open({ config, logger: log.logger, outboxPath, retryBaseMs: 50 });
    notifiers.push(notifier);
    await notifier.resume();
    return notifier;
  };
  return { dir, config, log, outboxPath, open };
}

test('each format is received by its server: Slack text, Discord content, ntfy body, a webhook signed per Standard Webhooks', async (t) => {
  const receivers: Record<string, GitHubServer> = {};
  for (const format of ['slack', 'discord', 'ntfy', 'webhook']) receivers[format] = await startGitHubServer(t);
  const { open } = await rig(
    t,
    Object.entries(receivers).map(([format, server]) => ({ format, url: `${server.url}/hook/${format}` })),
  );
  const notifier = await open();
  notifier.finished(failed);
  await notifier.flush(10_000);

  const link = 'https://deploy.example.com/deploys/d-0001';
  const line = `cafeteria: deploy FAILED (v2 @ ${SHA.slice(0, 7)}): health failed: GET /health answered 500 after 10 s ${link}`;
  assert.deepEqual(
    receivers.slack!.requests.map((r) => r.body),
    [{ text: line }],
  );
  assert.deepEqual(
    receivers.discord!.requests.map((r) => r.body),
    [{ content: line, allowed_mentions: { parse: [] } }],
  );
  assert.deepEqual(
    receivers.ntfy!.requests.map((r) => r.body),
    [line],
  );

  const [request] = receivers.webhook!.requests;
  assert.equal(receivers.webhook!.requests.length, 1);
  const raw = JSON.stringify(request!.body);
  const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => [name, String(request!.headers[name])]));
  const verified = new Webhook(SECRET).verify(raw, headers) as any;
  assert.equal(verified.type, 'deploy.failed');
  assert.deepEqual(verified.data, {
    app: 'cafeteria',
    deploy_id: 'd-0001',
    outcome: 'failed',
    step: 'health',
    commit: SHA,
    ref: 'refs/tags/v2',
    colors: { from: 'blue', to: 'green' },
    duration_ms: 12_500,
    summary: 'health failed: GET /health answered 500 after 10 s',
    url: link,
  });
  assert.throws(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(raw, headers), /signature/i);
});

test('a failure is told with the step its deploy failed at, as the journal has it, a step named in two words too', async (t) => {
  const { config } = await rig(t, [{ format: 'slack', url: 'http://127.0.0.1:9/hook' }]);
  const reload = { ...failed, summary: 'nginx reload failed: nginx: [emerg] unknown directive "proxy_pas"', failedStep: 'nginx reload' } as const;
  assert.equal(triggerEvent(config, reload, 'failed').step, 'nginx reload');
  assert.equal(triggerEvent(config, { ...failed, summary: 'the disk is full (ENOSPC) at health', failedStep: 'health' }, 'failed').step, 'health');
  assert.equal(triggerEvent(config, { ...failed, state: 'succeeded', failedStep: null }, 'succeeded').step, null);
});

test('a long summary is cut within each provider limit, never inside a character, and the link stays', async (t) => {
  const slack = await startGitHubServer(t);
  const discord = await startGitHubServer(t);
  const ntfy = await startGitHubServer(t);
  const { open } = await rig(t, [
    { format: 'slack', url: `${slack.url}/s` },
    { format: 'discord', url: `${discord.url}/d` },
    { format: 'ntfy', url: `${ntfy.url}/n` },
  ]);
  const notifier = await open();
  notifier.finished({ ...failed, summary: `build failed: ${'💥 npm ERR! '.repeat(5000)}` });
  await notifier.flush(10_000);
  const text = (slack.requests[0]!.body as { text: string }).text;
  const content = (discord.requests[0]!.body as { content: string }).content;
  const body = ntfy.requests[0]!.body as string;
  assert.ok(text.length <= 40_000 && text.length > 39_000, `slack ${text.length}`);
  assert.ok(content.length <= 2_000 && content.length > 1_900, `discord ${content.length}`);
  assert.ok(Buffer.byteLength(body) <= 4_096 && Buffer.byteLength(body) > 4_000, `ntfy ${Buffer.byteLength(body)}`);
  for (const message of [text, content, body]) {
    assert.match(message, /… https:\/\/deploy\.example\.com\/deploys\/d-0001$/);
    assert.ok(!message.includes('\uFFFD') && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(message), 'no broken surrogate');
  }
});

test('a receiver down (refusing, then 503 with Retry-After) gets the message later; a restart in between still delivers it, once', async (t) => {
  const port = await freePort();
  const { open, outboxPath, log } = await rig(t, [{ format: 'webhook', url: `http://127.0.0.1:${port}/hook` }]);
  const first = await open();
  first.finished(failed);
  // Refused: nothing listens on the port yet.
  await first.flush(500);
  assert.ok(log.lines.some((line) => /notify: not delivered \(ECONNREFUSED\); retrying/.test(line.msg)));
  await first.close();
  assert.match(await readFile(outboxPath, 'utf8'), /"op":"enqueue"/);

  const receiver = await startGitHubServer(t, { port });
  receiver.respond('POST', /^\/hook$/, { status: 503, headers: { 'retry-after': '1' } });
  const second = await open();
  await second.flush(20_000);
  assert.equal(receiver.requests.length, 2, 'the 503, then the delivery');
  const [refused, delivered] = receiver.requests;
  assert.ok(Number(delivered!.headers['webhook-timestamp']) - Number(refused!.headers['webhook-timestamp']) >= 1, 'Retry-After was waited');
  assert.equal(delivered!.headers['webhook-id'], refused!.headers['webhook-id'], 'one message id across attempts and the restart');
  assert.equal(await readFile(outboxPath, 'utf8'), '', 'compacted once delivered');
  await second.close();

  const third = await open();
  await third.flush(1000);
  assert.equal(receiver.requests.length, 2, 'not sent again by the next process');
});

test('only the outcomes asked for, for the apps asked for; superseded and succeeded are quiet by default', async (t) => {
  const all = await startGitHubServer(t);
  const picky = await startGitHubServer(t);
  const { open } = await rig(t, [
    { format: 'slack', url: `${all.url}/a` },
    { format: 'slack', url: `${picky.url}/p`, extra: ', on: [succeeded, failover], apps: [cafeteria]' },
  ]);
  const notifier = await open();
  notifier.finished({ ...failed, state: 'superseded', summary: 'Superseded by abc' });
  notifier.finished({ ...failed, id: 'd-0002', state: 'succeeded', summary: 'Live on green in 8.2s' });
  notifier.finished({ ...failed, id: 'd-0003', summary: 'watch failed: green exited with code 1; switched back to blue (0123456) and stopped green' });
  notifier.failedOver({ name: 'cafeteria' }, { id: 'd-0004', from: 'green', to: 'blue', sha: SHA, fromSha: null }, 'green down for 10 s');
  await notifier.flush(10_000);
  const texts = (server: GitHubServer) => server.requests.map((r) => (r.body as { text: string }).text.replace(/ https:.*$/, ''));
  assert.deepEqual(texts(all), [
    `cafeteria: SWITCHED BACK after the watch (v2 @ ${SHA.slice(0, 7)}): watch failed: green exited with code 1; switched back to blue (0123456) and stopped green`,
    `cafeteria: FAILOVER (${SHA.slice(0, 7)}): failed over from green to blue: green down for 10 s`,
  ]);
  assert.deepEqual(texts(picky), [
    `cafeteria: deployed (v2 @ ${SHA.slice(0, 7)}): Live on green in 8.2s`,
    `cafeteria: FAILOVER (${SHA.slice(0, 7)}): failed over from green to blue: green down for 10 s`,
  ]);
});

test('a URL file others may read, or a webhook secret that is not one, stops the notifier at its start', async (t) => {
  const { open, dir } = await rig(t, [{ format: 'webhook', url: 'https://hooks.example.com/x' }]);
  await chmod(join(dir, 'url-0'), 0o644);
  await assert.rejects(open(), /notify\[0\]\.url_file: .* can be read by others \(mode 0644\)/);
  await chmod(join(dir, 'url-0'), 0o600);
  await writeFile(join(dir, 'secret'), 'not-a-secret', { mode: 0o600 });
  await assert.rejects(open(), /notify\[0\]\.secret_file: .* does not hold a Standard Webhooks secret/);
});

test('a receiver refusing for good (404) is not asked again; one down for 24 hours is given up on, with a log line', async (t) => {
  const gone = await startGitHubServer(t);
  gone.respondAlways('POST', /^\/gone$/, 404);
  const port = await freePort();
  const { open, outboxPath, log } = await rig(t, [
    { format: 'discord', url: `${gone.url}/gone` },
    { format: 'ntfy', url: `http://127.0.0.1:${port}/topic`, extra: ', on: [succeeded]' },
  ]);
  // A message queued a day and a minute ago, by a process before a restart, for the receiver still down.
  const queuedAt = new Date(Date.now() - 24 * 60 * 60_000 - 60_000).toISOString();
  const event = { app: 'cafeteria', deployId: 'd-0007', outcome: 'failed', step: 'build', commit: SHA, ref: 'main', colors: { from: 'blue', to: 'green' } };
  const old = { ...event, durationMs: 1000, summary: 'build failed: exit 1', url: null, at: queuedAt };
  await mkdir(dirname(outboxPath), { recursive: true });
  await writeFile(
    outboxPath,
    `${JSON.stringify({ op: 'enqueue', id: 'msg_old', target: `ntfy ${join(dirname(dirname(outboxPath)), 'url-1')}`, queuedAt, event: old })}\n`,
  );

  const notifier = await open();
  notifier.finished(failed);
  await notifier.flush(10_000);
  assert.equal(gone.requests.length, 1);
  assert.ok(log.lines.some((line) => line.level === 50 && /notify: refused by the receiver \(HTTP 404\); not retrying/.test(line.msg)));
  assert.ok(
    log.lines.some(
      (line) => line.level === 50 && line.deploy === 'd-0007' && /notify: giving up after 24 h of failed attempts \(ECONNREFUSED\)/.test(line.msg),
    ),
  );
  assert.equal(await readFile(outboxPath, 'utf8'), '');
});

test('Retry-After in seconds or as an HTTP date', async (t) => {
  const receiver = await startGitHubServer(t);
  const { config } = await rig(t, [{ format: 'slack', url: `${receiver.url}/hook` }]);
  const target = config.notify[0]!;
  const secrets = await readTargetSecrets(target, 0);
  const event = triggerEvent(config, failed, 'failed');
  const waitAsked = async (retryAfter: string | undefined): Promise<number | undefined> => {
    receiver.respond('POST', /^\/hook$/, { status: 429, headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter } });
    const outcome = await sendNotification(target, secrets, 'msg_retry', event);
    assert.ok('retry' in outcome, JSON.stringify(outcome));
    return outcome.waitMs;
  };
  assert.equal(await waitAsked('120'), 120_000);
  // An HTTP date counts in whole seconds: half a minute from now is a little less by the time it is read.
  const date = await waitAsked(new Date(Date.now() + 30_000).toUTCString());
  assert.ok(date !== undefined && date > 28_000 && date <= 30_000, String(date));
  assert.equal(await waitAsked(new Date(Date.now() - 3_600_000).toUTCString()), 0, 'a date gone by');
  assert.equal(await waitAsked('soon'), undefined);
  assert.equal(await waitAsked(undefined), undefined);
});
