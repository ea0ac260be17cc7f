import type { AppConfig, Config } from '../config/load.js';
import type { CompactedEvent } from '../pipeline/compacted-deploys.js';
import { isDeployId, type DeployRecord, type StepRecord } from '../pipeline/journal.js';
import { JournalIndex } from '../pipeline/journal-index.js';
import { lockHolder } from '../pipeline/lock.js';
import { deployState, isFinal, type DeployState } from '../pipeline/deploy-state.js';
import type { TriggerQueue, TriggerRecord } from '../pipeline/trigger.js';

/**
 * One deploy as the HTTP side shows it. Two sources know about a deploy: the queue (everything
 * `duet serve` accepted, including triggers that have not started or never will) and the journal
 * (everything that ran, including deploys started from the CLI). Both use the same id. Of a
 * deploy compacted away, the journal keeps a summary (compacted-deploys.ts): no steps, no log.
 */

export interface DeployView {
  id: string;
  app: string;
  kind: string;
  /** From the trigger and the journal record together (deployState). */
  state: DeployState;
  ref: string | null;
  resolvedRef: string | null;
  sha: string | null;
  source: string | null;
  requestedBy: string | null;
  deliveryId: string | null;
  receivedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  summary: string | null;
  supersededBy: string | null;
  from: string | null;
  to: string | null;
  outcome: DeployRecord['outcome'];
  error: string | null;
  failedStep: string | null;
  durationMs: number | null;
  steps: StepRecord[];
  /** Compacted away: only its summary is left (the fields above), its steps and its log are gone. */
  compacted: boolean;
}

export interface FoundDeploy {
  id: string;
  app: AppConfig;
  trigger: TriggerRecord | undefined;
  record: DeployRecord | undefined;
  compacted?: CompactedEvent;
}

/** One index per journal for the life of duet serve: a request reads what was appended since the last. */
const indexes = new Map<string, JournalIndex>();

export function journalOf(app: AppConfig): JournalIndex {
  let index = indexes.get(app.paths.journal);
  if (!index) {
    index = new JournalIndex(app.paths.journal);
    indexes.set(app.paths.journal, index);
  }
  return index;
}

/**
 * Find a deploy by id. The id is checked before anything else, so a URL such as
 * /deploys/..%2f..%2fetc never gets near a path.
 */
export async function findDeploy(config: Config, queue: TriggerQueue, id: string): Promise<FoundDeploy | undefined> {
  if (!isDeployId(id)) return undefined;
  const trigger = queue.get(id);
  if (trigger) {
    const app = config.apps.get(trigger.app);
    if (!app) return undefined; // an app since removed from the config
    const journal = journalOf(app);
    return { id, app, trigger, record: await journal.record(id), compacted: await journal.compacted(id) };
  }
  for (const app of config.apps.values()) {
    const journal = journalOf(app);
    const record = await journal.record(id);
    if (record) return { id, app, trigger: undefined, record };
    const compacted = await journal.compacted(id);
    if (compacted) return { id, app, trigger: undefined, record: undefined, compacted };
  }
  return undefined;
}

export function viewOf(found: FoundDeploy): DeployView {
  const { app, trigger: t, record: r, compacted: c } = found;
  const startedAt = t?.startedAt ?? r?.startedAt ?? c?.startedAt ?? null;
  const finishedAt = t?.finishedAt ?? r?.endedAt ?? c?.at ?? null;
  const durationMs = r?.totalMs ?? (startedAt && finishedAt ? Date.parse(finishedAt) - Date.parse(startedAt) : null);
  return {
    id: found.id,
    app: app.name,
    kind: t?.kind ?? r?.kind ?? c?.kind ?? 'deploy',
    state: c && !t && !r ? c.state : deployState(t, r),
    ref: t?.ref ?? r?.ref ?? c?.ref ?? null,
    resolvedRef: r?.resolvedRef ?? null,
    sha: r?.sha ?? t?.resolvedSha ?? t?.sha ?? c?.sha ?? null,
    source: t?.source ?? (r ? 'cli' : null),
    requestedBy: t?.requestedBy ?? null,
    deliveryId: t?.deliveryId ?? null,
    receivedAt: t?.receivedAt ?? null,
    startedAt,
    finishedAt,
    summary: t?.summary ?? r?.reason ?? c?.summary ?? null,
    supersededBy: t?.supersededBy ?? null,
    from: r?.from ?? null,
    to: r?.to ?? t?.color ?? null,
    outcome: r?.outcome ?? null,
    error: r?.error ?? null,
    failedStep: r?.failedStep ?? null,
    durationMs: Number.isFinite(durationMs) ? durationMs : null,
    steps: r?.steps ?? [],
    compacted: c !== undefined,
  };
}

/**
 * Whether a deploy can still write to its log. A deploy the queue does not know was started by
 * the CLI: it is over once journaled as ended, or once no live process holds the app's lock
 * (it was killed; the next deploy will journal it as interrupted).
 */
export async function isOver(queue: TriggerQueue, found: FoundDeploy): Promise<boolean> {
  if (found.compacted) return true;
  const trigger = queue.get(found.id);
  if (trigger && isFinal(trigger.state)) return true;
  const record = await journalOf(found.app).record(found.id);
  if (record?.outcome) return true;
  if (trigger) return false;
  return (await lockHolder(found.app)) === undefined;
}

/** The newest deploys of an app from both sources, newest first (ids sort by time). */
export async function recentDeploys(queue: TriggerQueue, app: AppConfig, limit: number): Promise<DeployView[]> {
  const journal = journalOf(app);
  const byId = new Map<string, FoundDeploy>();
  for (const record of await journal.recent(limit)) byId.set(record.id, { id: record.id, app, trigger: undefined, record });
  for (const trigger of queue.list({ app: app.name, limit })) {
    const record = byId.get(trigger.id)?.record ?? (await journal.record(trigger.id));
    byId.set(trigger.id, { id: trigger.id, app, trigger, record });
  }
  return [...byId.values()]
    .map(viewOf)
    .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .slice(0, limit);
}
