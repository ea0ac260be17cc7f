import type { FailsSettings } from './scenarios/app-fails.js';
import type { ClientKind } from './scenarios/deploy-load.js';

/** The counts and windows of a run: `--quick` takes the small ones (not the run to quote). */

export const quick = process.argv.includes('--quick');

/**
 * `--breakdown-only N`: the socket and port parts measure section 2 alone, with N deploys each
 * (their load rows are left out), to compare duet's overhead before and after a change.
 */
export const breakdownOnly = parseCount(process.argv, '--breakdown-only');

function parseCount(argv: string[], flag: string): number | null {
  const index = argv.indexOf(flag);
  if (index < 0) return null;
  const count = Number(argv[index + 1]);
  if (!Number.isInteger(count) || count < 1) {
    process.stderr.write(`${flag} takes a count of deploys (1 or more)\n`);
    process.exit(2);
  }
  return count;
}

const base = quick
  ? {
      deploysPerRow: 1,
      warmMs: 250,
      tailMs: 250,
      breakdownReps: 1,
      apiRollbackRounds: 1,
      installRounds: 1,
      rates: [100, 200],
      stepMs: 1000,
      goalStepMs: 2000,
      maxDurationS: 1,
      idleWaitMs: 300,
      startupRuns: 1,
      kills: 1,
      artifactRounds: 1,
    }
  : {
      deploysPerRow: 5,
      warmMs: 500,
      tailMs: 500,
      breakdownReps: 3,
      apiRollbackRounds: 2,
      installRounds: 2,
      rates: [50, 100, 200, 400, 800],
      stepMs: 4000,
      goalStepMs: 10_000,
      maxDurationS: 4,
      idleWaitMs: 2000,
      startupRuns: 5,
      kills: 3,
      artifactRounds: 2,
    };
export const settings = { ...base, breakdownReps: breakdownOnly ?? base.breakdownReps };
export const LOAD = { threads: 2, connections: 32 };
/**
 * Which client kinds load which deploys: the full run gives keep-alive and `Connection: close`
 * clients deploys of their own; --quick loads one deploy with both at once (16 connections each).
 */
export const KIND_GROUPS: ClientKind[][] = quick ? [['keep-alive', 'close']] : [['keep-alive'], ['close']];
export const series = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
/** Tags for the loaded deploys of one system: one series per kind group. */
export const loadSeries = (prefix: string[]): string[][] => KIND_GROUPS.map((_, i) => series(prefix[i]!, settings.deploysPerRow));
export const WEBHOOK = { connections: 16, burst: 100 };
/**
 * Section 6: both client kinds at once, 16 connections each (32 in all, as the load rows), each
 * request recorded; the windows are the same in --quick (only the number of kills differs).
 */
const FAILS_LOAD: FailsSettings['death']['load'] = { connections: 16, kinds: ['keep-alive', 'close'], warmMs: 500 };
export const FAILS: FailsSettings = {
  kills: settings.kills,
  ...FAILS_LOAD,
  afterKillMs: 5000,
  duetTailMs: 5000,
  otherTailMs: 10_000,
  // The audit's pace: 60 requests of death in 21 s.
  death: { load: FAILS_LOAD, deaths: 20, intervalMs: 350, afterMs: 3000 },
};
/** Section 7: the rate issue 28 measured the live color's p99 at (200 and 400 requests/s). */
export const ISOLATION_RATE = 200;
