import type { AppConfig, Config } from '../config/load.js';
import { otherColor, parseColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import type { OutputSink } from '../util/run.js';
import { describeTarget, probe, publicTarget, type Target } from '../util/http-probe.js';
import { isSocket, liveSocketColor, pointSockets, restoreSockets } from './live-socket.js';
import { ensureManagedNginx } from './managed-nginx.js';
import { activeMarks, appConfPath, installConf, proxiesToUnixSocket, reloadConf, renderAppConf, upstreamPort } from './nginx-conf.js';
import { pollUntil } from '../util/poll.js';
import { markBeforeReload, stillAccepting, type ReloadMark } from './nginx-workers.js';
import { checkBeforeSwitch, prepareServerDirs } from './tls.js';
import { keepAppRootPrivate, makeSocketReachable } from './socket-permissions.js';

/**
 * Where duet asks the app's public server: the HTTPS port once the app has one (its plain HTTP
 * port may only redirect), with the server's name for SNI; else the plain HTTP port.
 */
export function appPublicTarget(app: AppConfig): Target {
  if (!activeMarks(app).has('tls')) return publicTarget(app.listen);
  const servername = app.server_name === '_' || app.server_name.includes('*') ? undefined : app.server_name;
  return { ...publicTarget(app.tls.listen), tls: { servername } };
}

/** One probe never waits longer than this, so a slow answer is retried within the deadline. */
const PROBE_TIMEOUT_MS = 2_000;
const MIN_PROBE_MS = 250;

/**
 * Which color nginx is configured to send the app's traffic to, read from what is on disk (not
 * from duet's memory or a comment): the `server 127.0.0.1:<port>` line of duet-<app>.conf mapped
 * back through app.ports, or in socket mode the target of live.sock. A socket-mode file is read
 * through the symlink even if duet.yml now says port mode, and vice versa, so that changing the
 * mode does not make the current color unknowable. undefined when nothing was ever connected.
 */
export async function configuredColor(app: AppConfig, config: Config): Promise<Color | undefined> {
  const path = appConfPath(app, config);
  const conf = await readFileIfExists(path);
  if (conf === undefined) return app.switch === 'socket' ? liveSocketColor(app) : undefined;
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

/**
 * What the public port actually serves, asked over HTTP (a fresh connection per question).
 * Port mode: the X-Duet-Color header nginx adds -- the color whose address nginx tried last, so
 * the fallback when the live color refused, and on a 502 the last one nginx tried.
 * Socket mode: nginx proxies to symlinks and cannot know the color; X-Duet-Upstream says whether
 * live.sock or standby.sock answered, mapped back through live.sock's target. undefined when the
 * public port does not answer.
 */
export async function servingColor(app: AppConfig, options: { timeoutMs?: number } = {}): Promise<Color | undefined> {
  const answer = await probe(appPublicTarget(app), app.health.path, options.timeoutMs ?? PROBE_TIMEOUT_MS);
  if (!answer) return undefined;
  const color = parseColor(headerValue(answer.headers['x-duet-color']));
  if (color) return color;
  if (app.switch !== 'socket') return undefined;
  const live = await liveSocketColor(app);
  return live && viaStandby(answer.headers) ? otherColor(live) : live;
}

function headerValue(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

/** Socket mode: the answer came from standby.sock, nginx's fallback, not from live.sock. */
function viaStandby(headers: Record<string, string | string[] | undefined>): boolean {
  return headerValue(headers['x-duet-upstream']) === 'standby';
}

export interface ConnectOptions {
  output?: OutputSink;
  verifyTimeoutMs?: number;
}

/** Send the app's public traffic to `color`, then check that nginx really does. */
export async function connectToNginx(app: AppConfig, config: Config, color: Color, options: ConnectOptions = {}): Promise<void> {
  const switched = await switchProxy(app, config, color, options);
  await verifyProxy(app, color, { output: options.output, timeoutMs: options.verifyTimeoutMs, reload: switched.reload });
}

/** What a switch did, for the verify after it. */
export interface Switched {
  /** A port-mode switch that reloaded nginx: the workers that must stop accepting. */
  reload?: ReloadMark;
}

/** The switch alone, without verification: connectToNginx is this followed by verifyProxy. */
export async function switchProxy(app: AppConfig, config: Config, color: Color, options: { output?: OutputSink } = {}): Promise<Switched> {
  if (app.switch === 'socket') {
    await switchSocket(app, config, color, options);
    return {};
  }
  // Refused before anything changes: nginx keeps serving what it served.
  prepareServer(app);
  await ensureManagedNginx(config, options);
  // Nobody but duet's user needs the app root in port mode (socket mode opens the way to the sockets).
  keepAppRootPrivate(app.paths.root);
  const before = await describeServing(app, config);
  const path = appConfPath(app, config);
  const mark = markBeforeReload(config);
  const changed = await installConf(path, await renderAppConf(app, color), config, { ...options, stillServing: before });
  if (!changed) {
    // The file names the color; whether nginx runs it is asked, not assumed.
    if ((await servingColor(app)) === color) return {};
    await reloadConf(path, config, { ...options, stillServing: 'nginx still runs its previous config' });
  }
  options.output?.write(`switch: nginx reloaded with ${app.name} -> ${color} (port ${app.ports[color]})\n`);
  return { reload: mark };
}

/** The include and webroot directories, and the certificate nginx is to load, checked. */
function prepareServer(app: AppConfig): void {
  prepareServerDirs(app);
  if (activeMarks(app).has('tls')) checkBeforeSwitch(app);
}

/**
 * Socket mode: the rename of live.sock is the switch, and it comes first, a few ms after the new
 * color was found healthy. That is safe whatever nginx runs: a nginx that proxies through
 * live.sock sends new connections to the new color at once, and one that does not yet (a first
 * connect, a managed nginx that is down, a change from port mode) is not touched by the rename and
 * is brought to it next. Until then the truth stays what nginx's conf says (configuredColor).
 */
async function switchSocket(app: AppConfig, config: Config, color: Color, options: { output?: OutputSink }): Promise<void> {
  prepareServer(app);
  // Checked before anything changes: a symlink to nothing would turn every request into a 502.
  if (!isSocket(app.paths.socket[color])) {
    throw new DuetError(`${app.name}: ${app.paths.socket[color]} does not exist; the ${color} instance is not listening`, {
      step: 'switch',
      hint: `start the ${color} instance first; nothing was changed and ${await describeServing(app, config)}`,
    });
  }
  // The app created its socket with its own umask; nginx's workers run as another user. The
  // other color's socket too, when it runs: it is nginx's fallback.
  makeSocketReachable(app.paths.socket[color], app.paths.root);
  const standby = app.paths.socket[otherColor(color)];
  if (app.fallback && isSocket(standby)) makeSocketReachable(standby, app.paths.root);
  const before = await pointSockets(app, color);
  options.output?.write(`switch: ${app.paths.liveSocket} -> ${color}.sock\n`);
  try {
    // A managed nginx that is down is started; one whose main config an upgraded duet changed is reloaded.
    await ensureManagedNginx(config, options);
    const path = appConfPath(app, config);
    const content = await renderAppConf(app, color);
    // The file does not depend on the color: written and reloaded only when it changed.
    if ((await readFileIfExists(path)) !== content) {
      // Not describeServing: live.sock already names the new color, and is put back below.
      await installConf(path, content, config, { ...options, stillServing: `nginx still runs its previous config for ${app.name}` });
    }
  } catch (error) {
    // nginx was not brought to live.sock: it points where it did, so the state stays one story.
    await restoreSockets(app, before);
    throw error;
  }
}

/**
 * How long the new color must answer every probe before a port-mode switch counts as done when
 * the reload's old workers cannot be watched (nginx-workers.ts; a system nginx whose pid file is
 * not at nginx.pid_file, or a reload by an earlier run). For ~100 ms after a reload a fresh
 * connection may still reach an old worker. Measured here: the last old answer came 70-100 ms
 * after the first new one (the benchmark's "healthy -> only the new version" minus "healthy ->
 * public", 76-85 ms over three full runs). An old answer inside the window starts it again, so a
 * slow machine makes verify wait longer, never pass early.
 */
const SETTLE_MS = 150;

export interface VerifyOptions {
  output?: OutputSink;
  timeoutMs?: number;
  /** The switch's reload: verify waits for exactly its old workers instead of SETTLE_MS. */
  reload?: ReloadMark;
}

/**
 * Check through the public port that nginx serves `color`: port mode polls for X-Duet-Color and
 * waits until the reload's old workers stopped accepting (or, when they cannot be watched, for
 * SETTLE_MS of answers from `color`); socket mode polls for a 2xx on the health path. Polled,
 * because nginx applies a reload asynchronously. Worth calling even when nothing changed: the
 * file may be right while nginx runs something else.
 */
export async function verifyProxy(app: AppConfig, color: Color, options: VerifyOptions = {}): Promise<string> {
  const timeoutMs = options.timeoutMs ?? app.verify_timeout_s * 1000;
  const target = appPublicTarget(app);
  let last = 'no answer';
  let since: number | undefined;
  const check = async (remaining: number): Promise<true | undefined> => {
    // Never a too-short last question: a probe cut off by the deadline would report "no answer"
    // where nginx did answer (say, 502), and hide the reason from the operator.
    const probeMs = Math.max(Math.min(remaining, PROBE_TIMEOUT_MS), MIN_PROBE_MS);
    if (app.switch === 'socket') {
      const answer = await probe(target, app.health.path, probeMs);
      if (!answer) {
        last = 'no answer';
        return undefined;
      }
      // An answer through standby.sock means live.sock refused the connection: not verified.
      const fallback = viaStandby(answer.headers);
      last = `HTTP ${answer.status}${fallback ? ' through standby.sock (live.sock refused the connection)' : ''}`;
      return !fallback && answer.status >= 200 && answer.status < 300 ? true : undefined;
    }
    if (options.reload) {
      // Cheap /proc reads first; the answer through the public port is asked once they are done.
      const old = stillAccepting(options.reload);
      if (old.length > 0) {
        last = `nginx workers from before the reload still accepting: ${old.join(', ')}`;
        return undefined;
      }
    }
    const serving = await servingColor(app, { timeoutMs: probeMs });
    last = serving ? `X-Duet-Color: ${serving}` : 'no answer with X-Duet-Color';
    if (serving !== color) {
      since = undefined;
      return undefined;
    }
    if (options.reload) return true;
    since ??= Date.now();
    return Date.now() - since >= SETTLE_MS ? true : undefined;
  };
  const where = describeTarget(target);
  // Probes at most 50 ms apart, so the settle window is actually observed, not slept through;
  // old workers are looked at every few ms, since verify ends the moment they are done.
  const every = options.reload ? { initialIntervalMs: 5, maxIntervalMs: 5 } : { maxIntervalMs: 50 };
  if (!(await pollUntil(check, { timeoutMs, ...every }))) {
    const what = app.switch === 'socket' ? `a 2xx answer on ${app.health.path}` : `X-Duet-Color: ${color}`;
    const socketHint =
      app.switch === 'socket' && last.startsWith('HTTP 502')
        ? `nginx cannot reach ${app.paths.socket[color]}: its workers (nobody/www-data) need write permission on the socket and o+x on its directories (makeSocketReachable); `
        : '';
    throw new DuetError(`${app.name}: ${where} did not give ${what} within ${timeoutMs / 1000} s after switching to ${color} (last: ${last})`, {
      step: 'verify',
      hint: `${socketHint}the config on disk names ${color}; check nginx's error log (a port taken by another process?) and the ${color} instance, then connect again`,
    });
  }
  // How it knows, for the journal: the reload's old workers watched, or answers over a time.
  const how =
    app.switch === 'socket'
      ? `a 2xx through live.sock`
      : options.reload
        ? `X-Duet-Color: ${color}, and nginx's workers from before the reload stopped accepting`
        : `X-Duet-Color: ${color} for ${SETTLE_MS} ms (no reload's workers to watch)`;
  options.output?.write(`verify: ${where} serves ${app.name} from ${color} (${how})\n`);
  return how;
}

/** For hints: what nginx does now, without failing when the current state is odd. */
async function describeServing(app: AppConfig, config: Config): Promise<string> {
  try {
    const color = await configuredColor(app, config);
    return color ? `nginx still serves ${color}` : `${app.name} was not connected before`;
  } catch {
    return `nginx still runs its previous config for ${app.name}`;
  }
}
