import { setTimeout as sleep } from 'node:timers/promises';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { AppJournal } from '../../src/pipeline/app-journal.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import type { JournalEvent } from '../../src/pipeline/journal.js';
import { examples, sign } from '../../test/support/serve.js';

/**
 * The signed push deliveries of section 4, and what duet made of them, read back from its
 * app's journal (its trigger events).
 */

export function pushPayload(fullName: string, sha: string, before: string): Record<string, any> {
  const example = examples('push').find((e) => String(e.ref).startsWith('refs/heads/') && !e.deleted);
  if (!example) throw new Error('no branch push example in @octokit/webhooks-examples');
  example.ref = 'refs/heads/main';
  example.before = before;
  example.after = sha;
  example.created = false;
  example.deleted = false;
  example.forced = false;
  example.head_commit = { ...(example.head_commit ?? {}), id: sha };
  example.repository.full_name = fullName;
  return example;
}

/**
 * One push, a different body per delivery: `<prefix><id><suffix>`, the delivery id in a field at
 * its end (duet and webhook ignore it). Answers to a body seen before are duplicates that write
 * nothing, so a load of one body would measure that shortcut instead of intake; the id at the end
 * lets wrk's script sign each body from a precomputed midstate (lib/wrk.ts).
 */
export interface UniqueBodies {
  prefix: string;
  suffix: string;
}

export function uniqueBodies(payload: Record<string, unknown>): UniqueBodies {
  const json = JSON.stringify(payload);
  if (!json.endsWith('}')) throw new Error('a push payload is a JSON object');
  return { prefix: `${json.slice(0, -1)},"bench_delivery":"`, suffix: '"}' };
}

/** GitHub's headers for a push delivery, all but its id and signature. */
export function pushHeaders(): Record<string, string> {
  return { 'content-type': 'application/json', 'user-agent': 'GitHub-Hookshot/bench', 'x-github-event': 'push' };
}

export function deliveryHeaders(body: string, id: string): Record<string, string> {
  return { ...pushHeaders(), 'x-hub-signature-256': sign(body), 'x-github-delivery': id };
}

/** Delivery ids duet recorded in the app's journal (as a trigger of its own or merged into one). */
export async function recordedDeliveries(journal: string): Promise<Set<string>> {
  const ids = new Set<string>();
  const lines = (await readFile(journal, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  for (const event of lines.flatMap((line): JournalEvent[] => {
    try {
      return [JSON.parse(line) as JournalEvent];
    } catch {
      return [];
    }
  })) {
    if (event.type === 'accepted' && event.trigger.deliveryId) ids.add(event.trigger.deliveryId);
    if (event.type === 'merged' && event.deliveryId) ids.add(event.deliveryId);
  }
  return ids;
}

/** Each trigger, folded with duet's own transition function. */
export async function triggerStates(journal: string): Promise<Map<string, Deploy>> {
  const deploys = await new AppJournal(basename(dirname(journal)), journal).all();
  return new Map(deploys.filter((d) => d.source !== null).map((d) => [d.id, d]));
}

/** Until the queue settled every trigger (the deploy that waited for the lock ran). */
export async function drained(path: string, timeoutMs: number, ids?: Set<string>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await triggerStates(path);
    const pending = [...(ids ?? states.keys())].some((id) => states.get(id)?.settled !== true);
    if (!pending) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}
