import type { AppConfig, Config } from '../config/load.js';
import { parseColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import type { OutputSink } from '../util/run.js';
import { describeTarget, probe, publicTarget, type ProbeResult, type Target } from '../util/http-probe.js';
import { pollUntil } from '../util/poll.js';
import { liveSocketColor } from './live-socket.js';
import { activeMarks, appConfPath, proxiesToUnixSocket, upstreamPort } from './nginx-conf.js';
import type { ReloadMark } from './nginx-workers.js';
import { checkBeforeSwitch, prepareServerDirs } from './tls.js';

// What both switches (port-switch.ts, socket-switch.ts) share: the conf on disk and the public port.

/**
 * Where duet asks the app's public server: the HTTPS port once the app has one (its plain HTTP
 * port may only redirect), with the server's name for SNI and Host; else the plain HTTP port.
 */
function appPublicTarget(app: AppConfig): Target {
  // Named as a visitor would, so that on a port several apps share nginx picks this app's server.
  const name = app.server_name === '_' || app.server_name.includes('*') ? undefined : app.server_name;
  if (!activeMarks(app).has('tls')) return { ...publicTarget(app.listen), name };
  return { ...publicTarget(app.tls.listen), tls: { servername: name }, name };
}

/** One probe never waits longer than this, so a slow answer is retried within the deadline. */
const PROBE_TIMEOUT_MS = 2_000;
const MIN_PROBE_MS = 250;

/**
 * Which color nginx is configured to send the app's traffic to, read from what is on disk (not
 * from duet's memory or a comment): the `server 127.0.0.1:<port>` line of duet-<app>.conf mapped
 * back through app.ports, or, for a conf that proxies to live.sock, its target. A socket-mode
 * file is read through the symlink even if duet.yml now says port mode, and vice versa, so that
 * changing the mode does not make the current color unknowable. Without a conf, `withoutConf`
 * answers. undefined when nothing was ever connected.
 */
export async function colorInConf(app: AppConfig, config: Config, withoutConf: () => Promise<Color | undefined>): Promise<Color | undefined> {
  const path = appConfPath(app, config);
  const conf = await readFileIfExists(path);
  if (conf === undefined) return withoutConf();
  if (proxiesToUnixSocket(conf)) return liveSocketColor(app);
  const port = upstreamPort(conf);
  if (port === app.ports.blue) return 'blue';
  if (port === app.ports.green) return 'green';
  throw new DuetError(
    `${path} sends ${app.name} to ${port === undefined ? 'no 127.0.0.1 port' : `port ${port}`}, ` +
      `which is neither blue (${app.ports.blue}) nor green (${app.ports.green})`,
    { step: 'status', hint: 'ports changed in duet.yml since the last switch, or the file was edited; connect a color again to rewrite it' },
  );
}

/** The public port's answer on the health path, and the color its X-Duet-Color names (a port-mode conf adds it). */
export async function askPublicPort(app: AppConfig, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ answer: ProbeResult; color: Color | undefined } | undefined> {
  const answer = await probe(appPublicTarget(app), app.health.path, timeoutMs);
  return answer && { answer, color: parseColor(headerValue(answer.headers['x-duet-color'])) };
}

export function headerValue(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

/** The include and webroot directories, and the certificate nginx is to load, checked. */
export function prepareServer(app: AppConfig): void {
  prepareServerDirs(app);
  if (activeMarks(app).has('tls')) checkBeforeSwitch(app);
}

/** For hints: what nginx does now, without failing when the current state is odd. */
export async function describeServing(app: AppConfig, configured: Promise<Color | undefined>): Promise<string> {
  try {
    const color = await configured;
    return color ? `nginx still serves ${color}` : `${app.name} was not connected before`;
  } catch {
    return `nginx still runs its previous config for ${app.name}`;
  }
}

export interface VerifyOptions {
  output?: OutputSink;
  timeoutMs?: number;
  /** The switch's reload: verify waits for exactly its old workers instead of a settle time. */
  reload?: ReloadMark;
}

/** How a switch's verify polls the public port, and what it says when it gives up or succeeds. */
interface Verification {
  /** One look: true once verified, else what was seen (the "last" of the error). */
  check(probeMs: number, target: Target): Promise<true | string>;
  /** What was expected, for the error. */
  what: string;
  /** Probes at most this far apart, and the first this soon. */
  intervals: { initialIntervalMs?: number; maxIntervalMs: number };
  /** How it knows, for the journal. */
  how: string;
  /** The start of the hint, from the last thing seen. */
  hintFor?(last: string): string;
}

/**
 * Check through the public port that nginx serves `color`. Polled, because nginx applies a
 * reload asynchronously. Worth calling even when nothing changed: the file may be right while
 * nginx runs something else.
 */
export async function pollPublicPort(app: AppConfig, color: Color, options: VerifyOptions, v: Verification): Promise<string> {
  const timeoutMs = options.timeoutMs ?? app.verify_timeout_s * 1000;
  const target = appPublicTarget(app);
  let last = 'no answer';
  const check = async (remaining: number): Promise<true | undefined> => {
    // Never a too-short last question: a probe cut off by the deadline would report "no answer"
    // where nginx did answer (say, 502), and hide the reason from the operator.
    const seen = await v.check(Math.max(Math.min(remaining, PROBE_TIMEOUT_MS), MIN_PROBE_MS), target);
    if (seen === true) return true;
    last = seen;
    return undefined;
  };
  const where = describeTarget(target);
  if (!(await pollUntil(check, { timeoutMs, ...v.intervals }))) {
    throw new DuetError(`${app.name}: ${where} did not give ${v.what} within ${timeoutMs / 1000} s after switching to ${color} (last: ${last})`, {
      step: 'verify',
      hint: `${v.hintFor?.(last) ?? ''}the config on disk names ${color}; check nginx's error log (a port taken by another process?) and the ${color} instance, then connect again`,
    });
  }
  options.output?.write(`verify: ${where} serves ${app.name} from ${color} (${v.how})\n`);
  return v.how;
}
