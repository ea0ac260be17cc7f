import type { JournalEvent } from './journal.js';
import { isTriggerEvent, type TriggerEvent, type TriggerRequest } from './trigger.js';

/**
 * The deliveries each app accepted, so that one sent again is answered with the deploy it made
 * instead of making another: by its delivery id (a redelivery), and by the sha256 of its signed
 * body (the id is not signed: an old body replayed under a new id is the same push). A replayed
 * tag push that got a new deploy would move production back to that tag.
 *
 * Kept per app and by age, never by a count of all triggers: a window shared by all apps and
 * counted in finished triggers let an old v3 tag push deploy again after 2,000 deliveries to
 * another app. Durable in the app's journal: the trigger's own lines, and once a compaction drops
 * those, a `seen` line holding only its keys (seenLines below, journal-compaction.ts).
 */

/** GitHub lets a delivery be redelivered for 3 days: every one accepted since is kept. */
const SEEN_FOR_MS = 3 * 24 * 60 * 60 * 1000;

/**
 * The newest keys of an app kept however old: an app that deploys rarely still knows its last few
 * hundred deliveries after 3 days, as it did when they were kept with its last triggers.
 */
const SEEN_AT_LEAST = 1_000;

/**
 * A hard cap on the keys kept per app (a delivery id or a body digest; a delivery has both), for
 * an app with far more deliveries than a deploy a minute: 50,000 keys are 25,000 deploying
 * deliveries within 3 days, one every 10 s day and night (their memory and journal size:
 * bench/README.md). Past it the oldest are forgotten before their 3 days are up. Only
 * signed deliveries that were accepted count: no one without the secret can push others out.
 */
const SEEN_CAP_PER_APP = 50_000;

/** Whether to keep a delivery accepted `at`, with `count` keys counted from the newest to it. */
function keeps(count: number, at: number, now: number): boolean {
  return count <= SEEN_CAP_PER_APP && (count <= SEEN_AT_LEAST || at >= now - SEEN_FOR_MS);
}

interface Seen {
  /** The deploy it made (or was merged into). */
  id: string;
  at: number;
}

/** What an event says was accepted; nothing for the events that accept no delivery. */
function keysOf(event: TriggerEvent): { deliveries: string[]; bodyDigests: string[] } {
  const present = (values: Array<string | null | undefined>): string[] => values.filter((v): v is string => typeof v === 'string' && v !== '');
  switch (event.type) {
    case 'accepted':
      return { deliveries: present([event.trigger.deliveryId]), bodyDigests: present([event.trigger.bodyDigest]) };
    case 'merged':
      return { deliveries: present([event.deliveryId]), bodyDigests: present([event.bodyDigest]) };
    case 'seen':
      return { deliveries: present(event.deliveries), bodyDigests: present(event.bodyDigests) };
    default:
      return { deliveries: [], bodyDigests: [] };
  }
}

// One map per app holds both kinds of key: the prefixes keep a GUID and a digest apart.
const deliveryKey = (id: string): string => `delivery:${id}`;
const bodyKey = (digest: string): string => `body:${digest}`;

export class SeenDeliveries {
  /** Per app, oldest first: a Map keeps the order of insertion, so pruning stops at the first one kept. */
  private readonly byApp = new Map<string, Map<string, Seen>>();

  /** The keys `event` (read from `app`'s journal, or just written to it) accepts. */
  note(app: string, event: TriggerEvent): void {
    const { deliveries, bodyDigests } = keysOf(event);
    if (deliveries.length === 0 && bodyDigests.length === 0) return;
    let seen = this.byApp.get(app);
    if (!seen) this.byApp.set(app, (seen = new Map<string, Seen>()));
    const entry = { id: event.id, at: Date.parse(event.at) };
    for (const key of [...deliveries.map(deliveryKey), ...bodyDigests.map(bodyKey)]) if (!seen.has(key)) seen.set(key, entry);
    const now = Date.now();
    for (const [key, { at }] of seen) {
      if (keeps(seen.size, at, now)) break;
      seen.delete(key);
    }
  }

  /** The deploy an earlier delivery of the same app made, when `request` is that delivery again. */
  duplicateOf(request: TriggerRequest): { id: string; reason: string } | undefined {
    const seen = this.byApp.get(request.app);
    const byId = request.deliveryId ? seen?.get(deliveryKey(request.deliveryId)) : undefined;
    if (byId) return { id: byId.id, reason: `delivery ${request.deliveryId} was already accepted` };
    const byBody = request.bodyDigest ? seen?.get(bodyKey(request.bodyDigest)) : undefined;
    if (byBody) return { id: byBody.id, reason: 'this signed body was already accepted; a new delivery id does not make it a new push' };
    return undefined;
  }
}

/**
 * What a compaction writes in place of the triggers it drops (`dropped`: their lines, and the
 * `seen` lines of earlier compactions): one `seen` line per trigger that deliveries asked for,
 * oldest first, those SeenDeliveries keeps (the last 3 days, at least the newest 1,000 keys).
 */
export function seenLines(dropped: readonly JournalEvent[], now = Date.now()): TriggerEvent[] {
  const byId = new Map<string, { at: number; deliveries: Set<string>; bodyDigests: Set<string> }>();
  for (const event of dropped) {
    if (!isTriggerEvent(event)) continue;
    const { deliveries, bodyDigests } = keysOf(event);
    if (deliveries.length === 0 && bodyDigests.length === 0) continue;
    const entry = byId.get(event.id) ?? { at: 0, deliveries: new Set<string>(), bodyDigests: new Set<string>() };
    entry.at = Math.max(entry.at, Date.parse(event.at));
    for (const id of deliveries) entry.deliveries.add(id);
    for (const digest of bodyDigests) entry.bodyDigests.add(digest);
    byId.set(event.id, entry);
  }
  // Stable: triggers of the same moment stay in the journal's order.
  const oldestFirst = [...byId].sort(([, a], [, b]) => a.at - b.at);
  let from = oldestFirst.length;
  for (let count = 0; from > 0; from -= 1) {
    const [, e] = oldestFirst[from - 1]!;
    count += e.deliveries.size + e.bodyDigests.size;
    if (!keeps(count, e.at, now)) break;
  }
  return oldestFirst
    .slice(from)
    .map(([id, e]) => ({ type: 'seen', id, at: new Date(e.at).toISOString(), deliveries: [...e.deliveries], bodyDigests: [...e.bodyDigests] }));
}
