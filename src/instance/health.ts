import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { pollUntil } from '../util/poll.js';
import { AnswerCutOff, httpGet } from '../util/http-probe.js';
import { endpointTarget } from './endpoint.js';
import { runnerOf } from './runner.js';

/** What one probe of `health.path` found. */
type HealthState = 'healthy' | 'unhealthy' | 'unreachable';

export interface HealthReport {
  state: HealthState;
  /** "HTTP 200", "HTTP 503", "ECONNREFUSED": what the operator needs to see. */
  detail: string;
  /** The connection ended after the process took the probe (reset, or its answer cut off). */
  cutOff?: true;
}

/** How a probe the process had taken ends when the process dies. */
const CUT_OFF_CODES = new Set(['ECONNRESET', 'EPIPE']);

export async function checkHealth(app: AppConfig, color: Color, timeoutMs = 2000): Promise<HealthReport> {
  try {
    const answer = await httpGet(endpointTarget(app.endpoints[color]), app.health.path, timeoutMs);
    const ok = answer.status >= 200 && answer.status < 300;
    const location = answer.status >= 300 && answer.status < 400 ? answer.headers.location : undefined;
    return { state: ok ? 'healthy' : 'unhealthy', detail: `HTTP ${answer.status}${typeof location === 'string' ? ` to ${location}` : ''}` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const cutOff = error instanceof AnswerCutOff || (code !== undefined && CUT_OFF_CODES.has(code));
    return { state: 'unreachable', detail: code ?? (error as Error).message, ...(cutOff ? { cutOff } : {}) };
  }
}

/** How long after a process's exit is seen an answer it wrote just before is still awaited. */
const EXIT_AND_ANSWER_APART_MS = 20;

/**
 * A probe the process's exit ended: whether the process had taken it from its socket's queue (a
 * start that got as far as accepting connections; the exit cut the probe off) or not (it still
 * waits, in a socket duet or systemd holds, for the next process).
 */
export interface ExitedDuringProbe {
  state: 'exited';
  tookProbe: boolean;
}

/**
 * One probe that ends at the process's exit (`exited`; none: it runs its course). An answer and
 * the exit right after it (the next request was a request of death) reach duet in the same turn
 * of its event loop, in either order: an answer that came just before the exit counts. Without
 * that, on a machine where requests of death come as fast as starts, no answer ever counted.
 */
export async function checkHealthUntilExit(
  app: AppConfig,
  color: Color,
  timeoutMs: number,
  exited: Promise<unknown> | undefined,
): Promise<HealthReport | ExitedDuringProbe> {
  const probe = checkHealth(app, color, timeoutMs);
  if (!exited) return probe;
  let report: HealthReport | undefined;
  let gone = false;
  void probe.then((answer) => (report = answer));
  void exited.then(() => (gone = true));
  const got = (): HealthReport | undefined => report;
  await Promise.race([probe, exited]);
  // A connection the exit cut off ends as it is reported, in either order; any other end is the
  // process's own answer (or refusal) while it runs.
  const first = got();
  if (first && !first.cutOff) return first;
  await oneTurnAfter(EXIT_AND_ANSWER_APART_MS);
  const last = got();
  if (last?.state === 'healthy' || (last && !gone)) return last;
  return { state: 'exited', tookProbe: last?.cutOff === true };
}

/**
 * A timer, then a turn of the loop's poll phase after it: a busy loop runs due timers before it
 * polls, and what the poll delivers (an answer, an exit) must be read after it.
 */
async function oneTurnAfter(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
  await new Promise((resolve) => setImmediate(resolve));
}

interface WaitOptions {
  /** Asked between probes: a process that died will never become healthy, so stop waiting. */
  isAlive: () => Promise<boolean>;
  /** Each probe's result goes to the owner (progress display), which decides what to show. */
  onReport?: (report: HealthReport) => void;
  timeoutMs?: number;
}

/**
 * Probe every 5-10 ms until healthy, the process dies, or `health.timeout_s` passes. The
 * interval is the delay between "the app is ready" and "duet noticed": a backoff to one probe
 * a second cost a deploy up to a second, while a refused connect or a GET on loopback costs
 * the app next to nothing (bench/README.md, section 2: from the app's "listening" to duet's
 * "healthy").
 */
export async function waitUntilHealthy(app: AppConfig, color: Color, options: WaitOptions): Promise<HealthReport> {
  const timeoutMs = options.timeoutMs ?? app.health.timeout_s * 1000;
  let last: HealthReport = { state: 'unreachable', detail: 'not probed yet' };
  let died = false;
  const healthy = await pollUntil(
    async () => {
      last = await checkHealth(app, color, Math.min(2000, timeoutMs));
      options.onReport?.(last);
      if (last.state === 'healthy') return last;
      if (!(await options.isAlive())) {
        died = true;
        return last;
      }
      return undefined;
    },
    { timeoutMs, initialIntervalMs: 5, maxIntervalMs: 10 },
  );
  const log = runnerOf(app).outputHint(color);
  if (died) {
    const tail = await runnerOf(app).outputTail(color);
    throw new DuetError(`${color} exited before it became healthy (last probe: ${last.detail})${tail ? `\n--- end of ${log} ---\n${tail}` : ''}`, {
      step: 'health',
      hint: `read the end of its log: ${log}`,
    });
  }
  if (!healthy) {
    const redirect = /^HTTP 3\d\d/.test(last.detail);
    throw new DuetError(`${color} did not become healthy within ${timeoutMs / 1000}s: GET ${app.health.path} last answered ${last.detail}`, {
      step: 'health',
      hint: redirect
        ? `a redirect is not healthy: point health.path at a route that answers 2xx itself (an app that redirects to https or to a login page needs a health route that does not)`
        : `check ${app.health.path} and the log ${log}; raise health.timeout_s if the app is just slow to start`,
    });
  }
  return healthy;
}
