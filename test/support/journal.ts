import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import type { JournalEvent } from '../../src/pipeline/journal.js';

/** The lines of an app's journal as events, as they are on disk (a torn one skipped). */
export async function journalEvents(path: string): Promise<JournalEvent[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as JournalEvent];
      } catch {
        return [];
      }
    });
}

/** Every deploy of a journal, read afresh as another process would, oldest first. */
export async function journalDeploys(path: string): Promise<Deploy[]> {
  return new AppJournal(basename(dirname(path)), path).all();
}

/** The deploys that ran (began), oldest first: a trigger superseded or still queued never did. */
export async function journalRuns(path: string): Promise<Deploy[]> {
  return (await journalDeploys(path)).filter((deploy) => deploy.pid !== null);
}
