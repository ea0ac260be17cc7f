import { stat } from 'node:fs/promises';
import type { Config } from '../config/load.js';
import { compactedLines } from './compacted-deploys.js';
import type { AppJournal } from './app-journal.js';
import { apply, isPending, type Deploy } from './deploy-state.js';
import type { JournalEvent } from './journal.js';
import { seenLines } from './seen-deliveries.js';
import { withServeLockUnlessServing } from './serve-lock.js';

/** Past this size the journal is rewritten at the end of a deploy (about 3 KB a deploy). */
const COMPACT_ABOVE_BYTES = 2 * 1024 ** 2;
/**
 * Deploys a compaction keeps, queued-only ones (superseded) counted too: the dashboard, `duet
 * history` and the API show the recent ones. (Deliveries are remembered by age, not by this.)
 */
const KEEP_DEPLOYS = 300;

/**
 * Rewrite the journal with its last KEEP_DEPLOYS deploys, every run that never ended (its process
 * died: the next lock holder closes it as interrupted) and every trigger still queued or running;
 * of a trigger dropped whose deliveries are still remembered (the last 3 days, and the app's
 * newest 1,000: seen-deliveries.ts), one `seen` line with their ids and body digests, so that a
 * replay is still a duplicate; of every deploy dropped, one `compacted` line with its summary
 * (90 days, the newest 5,000: compacted-deploys.ts), so that its link still answers. Only a
 * holder of the app's lock may call this, so no run appends meanwhile; duet serve appends
 * trigger events without that lock, so a compaction runs only in duet serve's own process (where
 * its appends wait for the rewrite, app-journal.ts) or while no duet serve runs (its lock taken for
 * the moment). Temp file, fsync, rename: a crash leaves the old journal or the new one, and
 * readers (another process's AppJournal) notice the new file and read it afresh. Returns the ids
 * of the deploys dropped (none while the file is under `aboveBytes`), whose logs can go too.
 */
export async function compactJournal(
  config: Pick<Config, 'stateDir'>,
  journal: AppJournal,
  options: { aboveBytes?: number; keep?: number } = {},
): Promise<string[]> {
  const size = await stat(journal.path).then(
    (s) => s.size,
    () => 0,
  );
  if (size <= (options.aboveBytes ?? COMPACT_ABOVE_BYTES)) return [];
  let dropped: string[] = [];
  await withServeLockUnlessServing(config, 'journal compaction', () =>
    journal.compact((events) => {
      const deploys = new Map<string, Deploy>();
      for (const event of events) {
        const next = apply(deploys.get(event.id), event, journal.app);
        if (next) deploys.set(event.id, next);
      }
      const kept = idsToKeep(events, deploys, options.keep ?? KEEP_DEPLOYS);
      const isKept = (event: JournalEvent): boolean => !isLeftOver(event) && kept.has(event.id);
      const gone = events.filter((event) => !isKept(event));
      dropped = [...new Set(gone.filter((event) => !isLeftOver(event)).map((event) => event.id))];
      const seen = seenLines(gone);
      const compacted = compactedLines([...deploys.values()].filter((deploy) => !kept.has(deploy.id)));
      // Nothing dropped and no line of an earlier compaction expired: the same file again.
      if (dropped.length === 0 && seen.length + compacted.length === gone.length) return undefined;
      return [...seen, ...compacted, ...events.filter(isKept)];
    }),
  );
  return dropped;
}

/** A line an earlier compaction wrote in place of a deploy it dropped: not a deploy to count or keep. */
function isLeftOver(event: JournalEvent): boolean {
  return event.type === 'seen' || event.type === 'compacted';
}

function idsToKeep(events: readonly JournalEvent[], deploys: ReadonlyMap<string, Deploy>, keep: number): Set<string> {
  const inOrder = [...new Set(events.filter((event) => !isLeftOver(event)).map((event) => event.id))];
  const kept = new Set(inOrder.slice(-keep));
  // A run that never ended (the next lock holder closes it), and a trigger the queue has yet to run or settle.
  for (const deploy of deploys.values()) if ((deploy.pid !== null && deploy.outcome === null) || isPending(deploy)) kept.add(deploy.id);
  return kept;
}
