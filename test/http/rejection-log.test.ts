import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { pollUntil } from '../../src/util/poll.js';
import { RejectionLog } from '../../src/http/rejection-log.js';

test('rejections past the first of a window are counted and summed up in one line when it ends; the next window logs again', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const log = new RejectionLog(logger, 3, 100);
  for (let i = 0; i < 10; i++) log.warn({ outcome: i % 2 === 0 ? 'busy' : 'unauthorized', status: i % 2 === 0 ? 503 : 401 }, 'webhook delivery rejected');
  assert.deepEqual(
    lines.map((l) => l.outcome),
    ['busy', 'unauthorized', 'busy'],
  );
  const summary = await pollUntil(async () => lines.find((l) => l.count !== undefined), { timeoutMs: 5000 });
  assert.deepEqual({ count: summary?.count, outcomes: summary?.outcomes }, { count: 7, outcomes: { unauthorized: 4, busy: 3 } });
  assert.match(String(summary?.msg), /^7 more webhook deliveries rejected in 0\.1 s, not logged one by one$/);
  log.warn({ outcome: 'busy' }, 'webhook delivery rejected');
  assert.equal(lines.at(-1)?.msg, 'webhook delivery rejected', 'a new window logs one by one again');
});
