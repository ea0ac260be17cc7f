import { stat } from 'node:fs/promises';
import { foldEvents, type Journal } from './journal.js';

/** Past this size the journal is rewritten at the end of a deploy (about 3 KB a deploy). */
export const COMPACT_ABOVE_BYTES = 2 * 1024 ** 2;
/** Deploys a compaction keeps: the dashboard, `duet history` and the API show the recent ones. */
export const KEEP_DEPLOYS = 300;

/**
 * Rewrite the journal with its last KEEP_DEPLOYS deploys and every one that never ended (their
 * process died: the next lock holder closes them as interrupted). Only a holder of the app's
 * lock may call this: every writer of the journal holds it, so no append can land in the file
 * being replaced. Temp file, fsync, rename: a crash leaves the old journal or the new one, and
 * readers (the dashboard's JournalIndex) notice the new file and read it afresh. Returns the ids
 * of the deploys dropped (none while the file is under `aboveBytes`), whose logs can go too.
 */
export async function compactJournal(journal: Journal, options: { aboveBytes?: number; keep?: number } = {}): Promise<string[]> {
  const size = await stat(journal.path).then(
    (s) => s.size,
    () => 0,
  );
  if (size <= (options.aboveBytes ?? COMPACT_ABOVE_BYTES)) return [];
  const events = await journal.events();
  const records = foldEvents(events);
  const keep = options.keep ?? KEEP_DEPLOYS;
  const kept = new Set(records.slice(-keep).map((r) => r.id));
  for (const record of records) if (record.outcome === null) kept.add(record.id);
  const dropped = records.filter((r) => !kept.has(r.id)).map((r) => r.id);
  if (dropped.length === 0) return [];
  await journal.rewrite(events.filter((event) => kept.has(event.id)));
  return dropped;
}
