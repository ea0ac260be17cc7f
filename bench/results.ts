import type { BreakdownResult } from './scenarios/breakdown.js';
import type { LoadRow } from './scenarios/deploy-load.js';
import type { InstallResult } from './scenarios/install-reuse.js';
import type { WebhookResult } from './scenarios/webhook.js';
import type { FailsResult } from './scenarios/app-fails.js';
import type { IsolationResult } from './scenarios/build-isolation.js';
import type { ArtifactResult } from './scenarios/artifact-update.js';
import type { Calibration } from './lib/shims.js';

/** Everything one run measured: written to bench/results.json, rendered by table.ts. */
export interface Results {
  meta: {
    startedAt: string;
    quick: boolean;
    durationS: number;
    node: string;
    cpus: number;
    cpuModel: string;
    loadAverageBefore: number[];
    loadAverageAfter: number[];
    /** The 1-minute load average as each part of the run began: how busy the machine was. */
    loadByPart: Record<string, number>;
    nginx: string | null;
    wrk: string | null;
    calibration: Calibration;
    /** Medians of `node -e 0` and `duet help`: the floor under every CLI run. */
    startup: { nodeMs: number | null; duetHelpMs: number | null };
    /** The same git command through simple-git when it prints nothing and when it prints. */
    simpleGit: { silentMs: number | null; printingMs: number | null; duetSilentMs?: number | null };
    settings: Record<string, unknown>;
  };
  load: LoadRow[];
  breakdown: { socket?: BreakdownResult; port?: BreakdownResult };
  install?: InstallResult;
  webhook?: WebhookResult;
  /** Section 6: the app fails (kill -9 under load, a version that crashes after going live). */
  fails?: FailsResult;
  /** Section 7: the live color's latency while a build runs beside it, with and without duet's isolation. */
  isolation?: IsolationResult;
  /** Section 7: an artifact deploy's update against the same release built on the server. */
  artifact?: ArtifactResult;
  /** Sections that failed, with why: their cells show n/a. */
  failures: Record<string, string>;
}
