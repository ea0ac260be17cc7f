import type { AppConfig, Config } from '../config/load.js';
import { appJournal } from '../pipeline/app-journal.js';
import type { Deploy, DeployState } from '../pipeline/deploy-state.js';
import { isDeployId, type StepRecord } from '../pipeline/journal.js';

/**
 * One deploy as the HTTP side answers with it (GET /deploys/:id): the Deploy its app's journal
 * folds (deploy-state.ts), under the names the API has promised. Of a deploy compacted away only
 * a summary is left (compacted-deploys.ts): no steps, no log.
 */
export interface DeployView {
  id: string;
  app: string;
  kind: string;
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
  outcome: Deploy['outcome'];
  error: string | null;
  failedStep: string | null;
  durationMs: number | null;
  steps: StepRecord[];
  /** Compacted away: only its summary is left (the fields above), its steps and its log are gone. */
  compacted: boolean;
}

export interface FoundDeploy {
  app: AppConfig;
  deploy: Deploy;
}

/**
 * Find a deploy by id. The id is checked before anything else, so a URL such as
 * /deploys/..%2f..%2fetc never gets near a path.
 */
export async function findDeploy(config: Config, id: string): Promise<FoundDeploy | undefined> {
  if (!isDeployId(id)) return undefined;
  for (const app of config.apps.values()) {
    const deploy = await appJournal(config, app.name).deploy(id);
    if (deploy) return { app, deploy };
  }
  return undefined;
}

export function deployView(d: Deploy): DeployView {
  const durationMs = d.totalMs ?? (d.startedAt && d.finishedAt ? Date.parse(d.finishedAt) - Date.parse(d.startedAt) : null);
  return {
    id: d.id,
    app: d.app,
    kind: d.kind,
    state: d.state,
    ref: d.ref,
    resolvedRef: d.resolvedRef,
    sha: d.resolvedSha ?? d.sha,
    // No trigger: a run from the shell (or duet's own, its kind says which).
    source: d.source ?? (d.compacted ? null : 'cli'),
    requestedBy: d.requestedBy,
    deliveryId: d.deliveryId,
    receivedAt: d.receivedAt,
    startedAt: d.startedAt,
    finishedAt: d.finishedAt,
    summary: d.summary ?? d.reason,
    supersededBy: d.supersededBy,
    from: d.from,
    to: d.color,
    outcome: d.outcome,
    error: d.error,
    failedStep: d.failedStep,
    durationMs: Number.isFinite(durationMs) ? durationMs : null,
    steps: d.steps,
    compacted: d.compacted,
  };
}

/** The newest deploys of an app, newest first (ids sort by time). */
export async function recentDeploys(config: Config, app: AppConfig, limit: number): Promise<DeployView[]> {
  const all = (await appJournal(config, app.name).all()).sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return all.slice(0, limit).map(deployView);
}
