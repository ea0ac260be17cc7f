import type { Logger } from 'pino';
import { EventLog } from '../util/event-log.js';
import { OutboxWriter } from '../util/outbox-writer.js';
import { isFinalDeploymentState, type Report } from './reports.js';

/**
 * The reporter's outbox: an append-only ndjson file, so a report that could not be delivered
 * before a restart (GitHub down, process killed) is sent by the next process. Records:
 *
 *   {op:'enqueue', key, id, report}     a report to deliver; only the last one per key counts
 *   {op:'done', key, id}                that report was delivered (or given up on)
 *   {op:'deployment', key, deploymentId} the GitHub Deployment created for a deployment key
 *
 * `done` names the report's id rather than just the key: an `enqueue` for the same key may have
 * been appended while the earlier one was in flight, and must not be cancelled by its `done`.
 */

export type OutboxRecord =
  | { op: 'enqueue'; key: string; id: string; report: Report }
  | { op: 'done'; key: string; id: string }
  | { op: 'deployment'; key: string; deploymentId: number };

interface OutboxContents {
  /** Per key, the newest report, when it was not delivered. */
  pending: Map<string, { id: string; report: Report }>;
  /** Deployments created and not yet given a final status. */
  deployments: Map<string, number>;
}

/** The outbox file; records that are not one of the three (a torn line) are skipped. */
function outboxLog(path: string): EventLog<OutboxRecord> {
  return new EventLog(path, { parse: parseRecord });
}

export async function readOutbox(path: string, logger: Logger): Promise<OutboxContents> {
  // A line torn by a crash mid-append is skipped: its report, if any, was never acknowledged.
  const { events, skipped } = await outboxLog(path).read();
  const last = new Map<string, { id: string; report: Report }>();
  const done = new Set<string>();
  const deployments = new Map<string, number>();
  for (const record of events) {
    if (record.op === 'enqueue') last.set(record.key, { id: record.id, report: record.report });
    else if (record.op === 'done') done.add(record.id);
    else deployments.set(record.key, record.deploymentId);
  }
  if (skipped > 0) logger.warn({ outbox: path, skipped }, 'github outbox: skipped unreadable lines');

  const pending = new Map<string, { id: string; report: Report }>();
  for (const [key, entry] of last) {
    if (!done.has(entry.id)) {
      pending.set(key, entry);
    } else if (entry.report.type === 'deployment' && isFinalDeploymentState(entry.report.state)) {
      deployments.delete(key);
    }
  }
  return { pending, deployments };
}

function parseRecord(value: unknown): OutboxRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.key !== 'string') return undefined;
  if (record.op === 'enqueue' && typeof record.id === 'string' && isReport(record.report)) return record as OutboxRecord;
  if (record.op === 'done' && typeof record.id === 'string') return record as OutboxRecord;
  if (record.op === 'deployment' && typeof record.deploymentId === 'number') return record as OutboxRecord;
  return undefined;
}

function isReport(value: unknown): value is Report {
  if (typeof value !== 'object' || value === null) return false;
  const report = value as Record<string, unknown>;
  return (
    (report.type === 'status' || report.type === 'deployment') &&
    ['owner', 'repo', 'sha', 'state', 'description', 'triggerId'].every((field) => typeof report[field] === 'string')
  );
}

/** The writer of the outbox file (see OutboxWriter). */
export function githubOutboxWriter(path: string, logger: Logger): OutboxWriter<OutboxRecord> {
  return new OutboxWriter(outboxLog(path), logger, 'github outbox');
}
