import { open, type FileHandle } from 'node:fs/promises';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Response } from 'express';
import { deployLogPath } from '../pipeline/deploy-log.js';
import type { TriggerQueue } from '../pipeline/trigger.js';
import { isFinal } from '../pipeline/deploy-state.js';
import { isOver, type FoundDeploy } from './deploys.js';

/**
 * `curl .../deploys/<id>/log` follows a deploy like `tail -f` and exits when it is over. The
 * deploy log is append-only (written synchronously by the pipeline), so tailing is "read from
 * the last offset whenever the file grew", by polling its size: simpler and more dependable
 * than fs.watch, which misses events on some file systems and coalesces others.
 */

interface TailOptions {
  queue: TriggerQueue;
  found: FoundDeploy;
  pollMs?: number;
  /** How often the journal is re-read to see whether the deploy ended (the queue is checked every poll). */
  journalCheckMs?: number;
}

const CHUNK = 64 * 1024;

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Answers the request itself: 404 JSON when a finished deploy left no log, else 200 text/plain. */
export async function streamDeployLog(res: Response, options: TailOptions): Promise<void> {
  const { queue, found } = options;
  const pollMs = options.pollMs ?? 200;
  const journalCheckMs = options.journalCheckMs ?? 1000;
  const path = deployLogPath(found.app, found.id);
  let handle = await openIfExists(path);
  if (!handle && (await isOver(queue, found))) {
    const superseded = found.trigger?.supersededBy;
    const why = found.compacted
      ? `deploy ${found.id} was compacted away: only its summary is kept (GET /deploys/${found.id})`
      : superseded
        ? `deploy ${found.id} was superseded by ${superseded} and never ran`
        : `deploy ${found.id} has no log`;
    res.status(404).json({ error: why });
    return;
  }

  // A client hanging up must stop the loop at once, including in the middle of a sleep.
  const stop = new AbortController();
  res.on('close', () => stop.abort());
  res.status(200).set({
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    // nginx in front of duet serve would otherwise buffer the stream until the deploy ends.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  if (res.req.method === 'HEAD') {
    res.end(); // the headers were the whole answer: do not follow the deploy for nothing
    return;
  }

  let offset = 0;
  let lastJournalCheck = 0;
  const buffer = Buffer.alloc(CHUNK);
  try {
    while (!stop.signal.aborted) {
      // Decide "over" before reading: the pipeline writes its last log line before it journals
      // the end, so everything read after seeing the end is the whole log.
      let over = false;
      const trigger = queue.get(found.id);
      const checkJournal = Date.now() - lastJournalCheck >= journalCheckMs;
      if ((trigger && isFinal(trigger.state)) || checkJournal) {
        lastJournalCheck = Date.now();
        over = await isOver(queue, found);
      }
      handle ??= await openIfExists(path);
      if (handle) {
        for (;;) {
          const { bytesRead } = await handle.read(buffer, 0, CHUNK, offset);
          if (bytesRead === 0 || stop.signal.aborted) break;
          offset += bytesRead;
          if (!res.write(Buffer.from(buffer.subarray(0, bytesRead)))) {
            await once(res, 'drain', { signal: stop.signal });
          }
        }
      }
      if (over) break;
      await sleep(pollMs, undefined, { signal: stop.signal });
    }
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  } finally {
    await handle?.close();
  }
  if (!stop.signal.aborted) {
    if (offset === 0 && found.trigger && queue.get(found.id)?.state === 'superseded') {
      res.write(`duet: deploy ${found.id} was superseded by ${queue.get(found.id)?.supersededBy ?? 'a newer trigger'} before it started\n`);
    }
    res.end();
  }
}
