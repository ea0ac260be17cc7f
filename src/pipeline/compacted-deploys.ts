import type { Deploy, DeployState } from './deploy-state.js';
import type { DeployKind } from './journal.js';

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
  kind: DeployKind;
  ref: string | null;
  /** The commit. */
  resolvedSha: string | null;
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
 * The `compacted` lines a compaction writes in place of the deploys it drops (`dropped`, folded:
 * those of earlier compactions too): one per deploy, those kept by age and count, oldest first.
 */
export function compactedLines(dropped: readonly Deploy[], now = Date.now()): CompactedEvent[] {
  // Ids sort by the time they were handed out.
  return dropped
    .map(summaryOf)
    .filter((line) => Date.parse(line.at) >= now - SUMMARY_FOR_MS)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(-SUMMARIES_PER_APP);
}

function summaryOf(deploy: Deploy): CompactedEvent {
  const startedAt = deploy.startedAt ?? deploy.receivedAt;
  return {
    type: 'compacted',
    id: deploy.id,
    at: deploy.finishedAt ?? startedAt ?? new Date(0).toISOString(),
    kind: deploy.kind,
    ref: deploy.ref,
    resolvedSha: deploy.resolvedSha ?? deploy.sha,
    state: deploy.state,
    // A deploy from the shell or an act has no trigger: what it ended with, or why it ran (a failover).
    summary: deploy.summary ?? deploy.error?.split('\n')[0] ?? deploy.reason,
    startedAt,
  };
}
