import { Worker } from 'node:worker_threads';

/**
 * Closed-loop load with a record of every request: `connections` clients per kind, each sending
 * `GET /` as soon as its previous request was answered (what wrk does), noting when each was
 * sent, when it was answered or failed, and who answered it. wrk only gives a summary; "the first
 * answer of the fallback after the kill" needs each answer's time and origin.
 *
 * Like the paced generator (paced-load.ts) it runs on a worker thread of its own, so that the
 * benchmark's own event loop and heap (log copying, a mark-compact pause) do not delay its sends
 * or its answers by tens of ms, which would be counted against the systems measured.
 */

export type LoadKind = 'keep-alive' | 'close';

export interface ClosedOptions {
  port: number;
  /** Clients per kind: keep-alive ones reuse their connection, `close` ones open one per request. */
  connections: number;
  kinds: LoadKind[];
  /** A request unanswered this long fails (wrk's --timeout in the other rows: 2 s). */
  timeoutMs?: number;
}

/** One request: times are wall-clock ms since the epoch (performance.timeOrigin + now). */
export interface RequestRecord {
  kind: LoadKind;
  sentAt: number;
  /** When the answer ended, or the request failed. */
  endedAt: number;
  /** 0: no answer (refused, reset, timeout). */
  status: number;
  error?: string;
  /** X-App-Version: which release answered. */
  version?: string;
  /** X-Duet-Color (port mode): the color that answered. */
  color?: string;
  /** X-Duet-Upstream (socket mode): live or standby. */
  upstream?: string;
}

export interface ClosedLoad {
  /** Stop sending; resolves with every request, once those in flight ended. */
  stop(): Promise<RequestRecord[]>;
}

export function startClosedLoad(options: ClosedOptions): Promise<ClosedLoad> {
  const worker = new Worker(new URL('./closed-worker.js', import.meta.url), { workerData: options });
  let settle: ((records: RequestRecord[]) => void) | undefined;
  let fail: ((error: Error) => void) | undefined;
  const done = new Promise<RequestRecord[]>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  done.catch(() => {});
  const stop = (): Promise<RequestRecord[]> => {
    worker.postMessage('stop');
    return done;
  };
  return new Promise((resolve, reject) => {
    worker.on('message', (message: { started: true } | { records: RequestRecord[] }) => {
      if ('started' in message) resolve({ stop });
      else settle!(message.records);
    });
    worker.once('error', (error) => {
      reject(error);
      fail!(error);
    });
    worker.once('exit', (code) => {
      const error = new Error(`the closed-loop load generator exited (code ${code}) without a result`);
      reject(error);
      fail!(error);
    });
  });
}
