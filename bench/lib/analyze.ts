import type { RunStep } from '../../src/errors.js';
import type { Deploy } from '../../src/pipeline/deploy-state.js';
import type { StepRecord } from '../../src/pipeline/journal.js';
import type { Probe } from './http.js';
import type { AppEvent, CliRun } from './duet-env.js';
import { unloggedMs, type Calibration, type ChildCall } from './shims.js';
import { unionLength, type Interval } from './stats.js';

/**
 * Where one deploy's (or rollback's) time went, from three sources that share the wall clock:
 * duet's journal (each step's start and duration), the timing shims (every child process duet
 * ran), and the app's own log (when its process started and when it began to listen).
 */

export interface ChildSummary {
  calls: number;
  ms: number;
}

export interface DeployBreakdown {
  kind: string;
  id: string;
  ref: string | null;
  /** The version the public port shows afterwards. */
  version: string;
  outcome: string | null;
  cliWallMs: number;
  journalTotalMs: number | null;
  /** Journal ms per step (null: the step did not run). */
  steps: Partial<Record<RunStep, number | null>>;
  /** Git calls inside the update step (fetch, checkout, clean, ...), overlapping time once. */
  fetchMs: number | null;
  /** From the last git call of update to the start of build: all of duet's install logic plus npm ci or cp. */
  installPhaseMs: number | null;
  /** npm ci's own wall time (when it ran). */
  npmCiMs: number | null;
  /** cp's own wall time (when node_modules was copied from the other color). */
  copyMs: number | null;
  /** cp's wall time after the journal's end: node_modules copied ahead for the next deploy (copyAhead). */
  copyAheadMs: number | null;
  installOutcome: string | null;
  buildMs: number | null;
  /** start + health steps. */
  startToHealthyMs: number | null;
  /** The app's own start: its process start to listening (from the app's log). */
  appStartMs: number | null;
  /** listening -> duet's health step done: how long duet took to notice. */
  healthNoticedAfterMs: number | null;
  /** health step done -> the first answer of the new version through the public port. */
  healthyToPublicMs: number | null;
  /** health step done -> the first answer after which the public port answered only the new version. */
  healthyToOnlyNewMs: number | null;
  /** Old colors stopped during the deploy: signal -> exit, as the app logged it. */
  appStopMs: number | null;
  children: Record<string, ChildSummary>;
  /** Union of child process time inside the journal window. */
  childMs: number;
  /** Waiting on the app: from its process start (or the health step's start) to health done, and old colors stopping. */
  appWaitMs: number;
  /**
   * Port mode: waiting on nginx's reload to finish, from the reload being applied to the first
   * probe after which the public port answered only the new version (nginx's old workers accept
   * for its fixed ~100 ms; verify waits that out). Seen from outside, in the probe loop. Applied:
   * the end of the switch step (duet signalled its managed nginx and saw the new workers forked;
   * that wait stays in duet's overhead, since the benchmark cannot see the signal).
   */
  nginxSettleMs: number | null;
  /** journal total - (child time + app wait + nginx settle): duet's own time inside the deploy. */
  overheadMs: number | null;
  /** CLI wall - journal total: node start, module loading, config, lock, exit. */
  cliOutsideJournalMs: number | null;
  /** CLI wall - (child time + app wait) over the whole CLI run. */
  overheadWithCliMs: number;
  /** Everything that happened, in ms from the CLI's spawn: journal steps, child processes, the app. */
  timeline: TimelineEntry[];
}

export interface TimelineEntry {
  at: number;
  ms: number | null;
  what: string;
}

const at = (iso: string): number => Date.parse(iso);
const stepEnd = (step: StepRecord): number => at(step.startedAt) + (step.ms ?? 0);

export function findRecord(records: Deploy[], run: CliRun, kind: string): Deploy {
  const candidates = records.filter((r) => r.kind === kind && r.startedAt !== null && at(r.startedAt) >= run.startedAt - 5 && at(r.startedAt) <= run.endedAt);
  const record = candidates.at(-1);
  if (!record) throw new Error(`no ${kind} in the journal between ${new Date(run.startedAt).toISOString()} and ${new Date(run.endedAt).toISOString()}`);
  return record;
}

export function analyzeDeploy(input: {
  run: CliRun;
  record: Deploy;
  calls: ChildCall[];
  calibration: Calibration;
  appEvents: AppEvent[];
  version: string;
  probes?: Probe[];
}): DeployBreakdown {
  const { run, record, calibration } = input;
  const begin = record.startedAt ? at(record.startedAt) : run.startedAt;
  const end = record.finishedAt ? at(record.finishedAt) : run.endedAt;
  const calls = input.calls.filter((c) => c.start >= run.startedAt - 1 && c.end <= run.endedAt + 1);
  const interval = (c: ChildCall): Interval => ({ start: c.start - unloggedMs(c, calibration), end: c.end });
  const duration = (c: ChildCall): number => c.end - c.start + unloggedMs(c, calibration);

  const steps: Partial<Record<RunStep, number | null>> = {};
  const firstStep = new Map<RunStep, StepRecord>();
  for (const step of record.steps) {
    if (!firstStep.has(step.name)) firstStep.set(step.name, step);
    steps[step.name] = (steps[step.name] ?? 0) + (step.ms ?? 0);
  }

  // update: fetch (git), install phase, build
  const update = firstStep.get('update');
  let fetchMs: number | null = null;
  let installPhaseMs: number | null = null;
  let npmCiMs: number | null = null;
  let copyMs: number | null = null;
  let buildMs: number | null = null;
  let installOutcome: string | null = null;
  if (update && update.status === 'done') {
    const from = at(update.startedAt);
    const to = stepEnd(update) + 1;
    const inUpdate = calls.filter((c) => c.start >= from - 1 && c.end <= to);
    const git = inUpdate.filter((c) => c.label === 'git');
    fetchMs = unionLength(git.map(interval));
    const build = inUpdate.find((c) => c.label === 'build');
    const lastGit = git.reduce((m, c) => Math.max(m, c.end), -Infinity);
    if (build && Number.isFinite(lastGit)) installPhaseMs = build.start - calibration.shellMs - lastGit;
    const npm = inUpdate.filter((c) => c.label === 'install');
    if (npm.length) npmCiMs = npm.reduce((s, c) => s + duration(c), 0);
    const cp = inUpdate.filter((c) => c.label === 'cp');
    if (cp.length) copyMs = cp.reduce((s, c) => s + duration(c), 0);
    if (build) buildMs = duration(build);
    installOutcome = /install (\w+)/.exec(update.detail ?? '')?.[1] ?? null;
  } else if (update) {
    installOutcome = update.status;
  }

  const start = firstStep.get('start');
  const health = firstStep.get('health');
  const healthDone = health && health.status === 'done' ? stepEnd(health) : undefined;
  const startToHealthyMs = start && health ? (start.ms ?? 0) + (health.ms ?? 0) : null;
  const appStart = input.appEvents.find(
    (a): a is Extract<AppEvent, { event: 'listening' }> =>
      a.event === 'listening' && a.version === input.version && a.spawnedAt >= run.startedAt - 50 && a.spawnedAt <= end,
  );
  // An old color stopped during this deploy: duet waited on it to exit.
  const appStops = input.appEvents.filter(
    (a): a is Extract<AppEvent, { event: 'stopped' }> => a.event === 'stopped' && a.signalAt >= run.startedAt && a.signalAt <= run.endedAt,
  );
  const appStartMs = appStart ? appStart.listeningAt - appStart.spawnedAt : null;
  const healthNoticedAfterMs = appStart && healthDone !== undefined ? healthDone - appStart.listeningAt : null;

  let healthyToPublicMs: number | null = null;
  let healthyToOnlyNewMs: number | null = null;
  let onlyNewAt: number | undefined;
  if (input.probes && healthDone !== undefined) {
    const probes = input.probes.filter((p) => p.sentAt >= run.startedAt);
    const first = probes.find((p) => p.version === input.version && p.status === 200);
    // No child process runs in between: duet reloads its managed nginx by signal.
    if (first) healthyToPublicMs = first.answeredAt - healthDone;
    // From then on only the new version: the first probe after the last one that was not new.
    const lastOther = probes.findLastIndex((p) => p.version !== input.version || p.status !== 200);
    const settled = probes[lastOther + 1];
    if (first && settled) {
      healthyToOnlyNewMs = settled.answeredAt - healthDone;
      onlyNewAt = settled.answeredAt;
    }
  }

  const ahead = calls.filter((c) => c.label === 'cp' && c.start >= end - 1);
  const copyAheadMs = ahead.length ? unionLength(ahead.map(interval)) : null;

  const children: Record<string, ChildSummary> = {};
  for (const call of calls.filter((c) => c.start >= begin - 1 && c.end <= end + 1)) {
    const entry = (children[call.label] ??= { calls: 0, ms: 0 });
    entry.calls += 1;
    entry.ms += duration(call);
  }
  const waiting: Interval[] = appStops.map((s) => ({ start: s.signalAt, end: s.exitAt }));
  if (healthDone !== undefined) {
    // A started app: from its process start. A warm standby (rollback): the health probe itself.
    const from = appStart ? appStart.spawnedAt : at(health!.startedAt);
    waiting.push({ start: from, end: healthDone });
  }
  const switched = firstStep.get('switch');
  const reloadedAt = switched?.status === 'done' && switched.detail === 'nginx reloaded' ? stepEnd(switched) : undefined;
  const settle = reloadedAt !== undefined && onlyNewAt !== undefined && onlyNewAt > reloadedAt ? { start: reloadedAt, end: onlyNewAt } : undefined;
  if (settle) waiting.push(settle);
  const childIntervals = calls.map(interval);
  const childMs = unionLength(childIntervals, begin, end);
  const appWaitMs = unionLength(waiting, begin, end);
  const journalTotalMs = record.totalMs;
  const overheadMs = journalTotalMs === null ? null : journalTotalMs - unionLength([...childIntervals, ...waiting], begin, end);
  const overheadWithCliMs = run.wallMs - unionLength([...childIntervals, ...waiting], run.startedAt, run.endedAt);

  const t0 = run.startedAt;
  const timeline: TimelineEntry[] = [
    { at: begin - t0, ms: null, what: `journal: ${record.kind} begins` },
    ...record.steps.map((step) => ({
      at: at(step.startedAt) - t0,
      ms: step.ms,
      what: `step ${step.name} ${step.status}${step.detail ? `: ${step.detail}` : ''}`,
    })),
    ...calls.map((c) => ({ at: c.start - t0, ms: c.end - c.start, what: `${c.label} ${c.args.slice(0, 100)}` })),
    ...(appStart
      ? [{ at: appStart.spawnedAt - t0, ms: appStart.listeningAt - appStart.spawnedAt, what: `app ${appStart.version} process start -> listening` }]
      : []),
    ...appStops.map((s) => ({ at: s.signalAt - t0, ms: s.exitAt - s.signalAt, what: `app ${s.version} stop signal -> exit` })),
    { at: end - t0, ms: null, what: `journal: ${record.kind} ends ${record.outcome}` },
  ]
    .map((e) => ({ at: Math.round(e.at * 10) / 10, ms: e.ms === null ? null : Math.round(e.ms * 10) / 10, what: e.what }))
    .sort((a, b) => a.at - b.at);

  return {
    kind: record.kind,
    id: record.id,
    ref: record.ref,
    version: input.version,
    outcome: record.outcome,
    cliWallMs: run.wallMs,
    journalTotalMs,
    steps,
    fetchMs,
    installPhaseMs,
    npmCiMs,
    copyMs,
    copyAheadMs,
    installOutcome,
    buildMs,
    startToHealthyMs,
    appStartMs,
    healthNoticedAfterMs,
    healthyToPublicMs,
    healthyToOnlyNewMs,
    appStopMs: appStops.length ? appStops.reduce((sum, s) => sum + s.exitAt - s.signalAt, 0) : null,
    children,
    childMs,
    appWaitMs,
    nginxSettleMs: settle ? settle.end - settle.start : null,
    overheadMs,
    cliOutsideJournalMs: journalTotalMs === null ? null : run.wallMs - journalTotalMs,
    overheadWithCliMs,
    timeline,
  };
}
