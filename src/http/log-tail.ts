import { open, type FileHandle } from 'node:fs/promises';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Response } from 'express';
import { deployLogPath } from '../pipeline/deploy-log.js';
import type { AppConfig, Config } from '../config/load.js';
import { appJournal } from '../pipeline/app-journal.js';
import { isFinal, type Deploy } from '../pipeline/deploy-state.js';
import { lockHolder } from '../pipeline/lock.js';
import type { FoundDeploy } from './deploys.js';

/**
 * `curl .../deploys/<id>/log` follows a deploy like `tail -f` and exits when it is over. The
 * deploy log is append-only (written synchronously by the pipeline), so tailing is "read from
 * the last offset whenever the file grew", by polling its size: simpler and more dependable
 * than fs.watch, which misses events on some file systems and coalesces others.
 */

interface TailOptions {
  config: Config;
  found: FoundDeploy;
  pollMs?: number;
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
  const { app } = options.found;
  const { id } = options.found.deploy;
  const pollMs = options.pollMs ?? 200;
  const journal = appJournal(options.config, app.name);
  const now = async (): Promise<Deploy> => (await journal.deploy(id)) ?? options.found.deploy;
  const path = deployLogPath(app, id);
  let handle = await openIfExists(path);
  const found = await now();
  if (!handle && (await logEnded(found, app))) {
    const why = found.compacted
      ? `deploy ${id} was compacted away: only its summary is kept (GET /deploys/${id})`
      : found.supersededBy
        ? `deploy ${id} was superseded by ${found.supersededBy} and never ran`
        : `deploy ${id} has no log`;
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
  let last = found;
  const buffer = Buffer.alloc(CHUNK);
  try {
    while (!stop.signal.aborted) {
      // Decide "over" before reading: the pipeline writes its last log line before it journals
      // the end, so everything read after seeing the end is the whole log.
      last = await now();
      const over = await logEnded(last, app);
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
    if (offset === 0 && last.state === 'superseded') {
      res.write(`duet: deploy ${id} was superseded by ${last.supersededBy ?? 'a newer trigger'} before it started\n`);
    }
    res.end();
  }
}

/**
 * Whether a deploy can still write to its log: not once it is final. A run from the shell that
 * is not final is over too once no live process holds the app's lock (it was killed; the next
 * deploy journals it as interrupted).
 */
async function logEnded(deploy: Deploy, app: AppConfig): Promise<boolean> {
  if (isFinal(deploy.state) || deploy.compacted) return true;
  if (deploy.source !== null) return false;
  return (await lockHolder(app)) === undefined;
}
