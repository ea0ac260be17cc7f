import { deployState, foldTriggers, type DeployState } from './deploy-state.js';
import { foldEvents, type DeployRecord, type JournalEvent } from './journal.js';
import type { TriggerRecord } from './trigger.js';

/**
 * What is left of a deploy a compaction dropped: its commit status still links to
 * `<public_url>/deploys/<id>`, and `GET /deploys/:id` answers with this summary, marked compacted
 * (its steps and its log went with it). Durable in the app's journal, one `compacted` line per
 * deploy, written by the compaction in place of its lines (journal-compaction.ts), as the `seen`
 * lines of its deliveries are (seen-deliveries.ts).
 */
export interface CompactedEvent {
  type: 'compacted';
  id: string;
  /** When it ended: its age. */
  at: string;
  kind: string;
  ref: string | null;
  sha: string | null;
  /** Its final state: succeeded, failed, errored, superseded or interrupted. */
  state: DeployState;
  summary: string | null;
  startedAt: string | null;
}

/** A summary is kept for 90 days after its deploy ended... */
const SUMMARY_FOR_MS = 90 * 24 * 60 * 60 * 1000;

/**
 * ...and at most the newest 5,000 per app (about 300 bytes each, 1.5 MB of journal): a flood of
 * pushes, each superseded by the next, cannot grow the journal further. Past it the oldest go.
 */
const SUMMARIES_PER_APP = 5_000;

/**
 * The `compacted` lines a compaction writes in place of `dropped` (the lines of the deploys it
 * drops, and the `compacted` lines of earlier compactions): one per deploy, those kept by age and
 * count, oldest first.
 */
export function compactedLines(dropped: readonly JournalEvent[], now = Date.now()): CompactedEvent[] {
  const triggers = foldTriggers(dropped);
  const runs = new Map(foldEvents([...dropped]).map((run) => [run.id, run]));
  const byId = new Map<string, CompactedEvent>();
  for (const event of dropped) if (event.type === 'compacted') byId.set(event.id, event);
  for (const id of new Set([...triggers.keys(), ...runs.keys()])) byId.set(id, summaryOf(id, triggers.get(id), runs.get(id)));
  // Ids sort by the time they were handed out.
  return [...byId.values()]
    .filter((line) => Date.parse(line.at) >= now - SUMMARY_FOR_MS)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(-SUMMARIES_PER_APP);
}

function summaryOf(id: string, trigger: TriggerRecord | undefined, run: DeployRecord | undefined): CompactedEvent {
  const startedAt = trigger?.startedAt ?? run?.startedAt ?? trigger?.receivedAt ?? null;
  return {
    type: 'compacted',
    id,
    at: trigger?.finishedAt ?? run?.endedAt ?? startedAt ?? new Date(0).toISOString(),
    kind: trigger?.kind ?? run?.kind ?? 'deploy',
    ref: trigger?.ref ?? run?.ref ?? null,
    sha: run?.sha ?? trigger?.resolvedSha ?? trigger?.sha ?? null,
    state: deployState(trigger, run),
    // A deploy from the shell or an act has no trigger: what it ended with, or why it ran (a failover).
    summary: trigger?.summary ?? run?.error?.split('\n')[0] ?? run?.reason ?? null,
    startedAt,
  };
}
