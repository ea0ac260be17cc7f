import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { appSettings, configChangeOf, type ConfigChange, type ConfigHashes } from '../instance/app-env.js';
import { checkedOutRevision } from '../instance/checkout.js';
import { endpointText } from '../instance/endpoint.js';
import { checkHealth } from '../instance/health.js';
import { readPrepared } from '../instance/prepared.js';
import { runnerOf } from '../instance/runner.js';
import { switchOf } from '../switch/switch.js';
import { servedCertificate } from '../switch/tls.js';
import { readPidfile } from '../instance/pidfile.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { readBreaking, type BreakingRecord } from './breaking.js';
import { appJournal } from './app-journal.js';
import { readSupervision, type BothCrashedRecord, type FailoverRecord, type SupervisionRecord } from './supervision-record.js';
import { lockHolder } from './lock.js';

/**
 * What a color is, read from the machine: `down` means duet started it and its process is gone
 * (its pidfile is still there; every stop by duet removes it), `stopped` that nobody wants it
 * running.
 */
type ColorState = 'healthy' | 'unhealthy' | 'down' | 'stopped';

export interface ColorStatus {
  port: number | string;
  pid: number | null;
  state: ColorState;
  running: boolean;
  healthy: boolean;
  /** From duet serve's supervision (null without it): restarts it made or saw, since when down, why. */
  restarts: number | null;
  downSince: string | null;
  lastProblem: string | null;
  revision: string | null;
  ref: string | null;
  startedAt: string | null;
  /**
   * A running color built or started with another configuration than duet.yml and the env files
   * hold now: 'environment' when only the env files changed (a restart applies them), null when
   * none did or it cannot be told (an env file that cannot be read).
   */
  configChanged: ConfigChange | null;
}

/**
 * The app as a whole, one model for `duet status`, the dashboard and the API, from what nginx
 * points at, what the public port shows and the live color's health:
 * - not-deployed: nothing was ever connected;
 * - live: the live color is healthy and answers the public port;
 * - unhealthy: the live color answers the public port but fails its health check;
 * - on-fallback: the live color is not healthy, the other answers through nginx's fallback;
 * - down: the public port does not answer;
 * - mismatch: duet's nginx config names one color, the public port answers from the other
 *   (nginx was not reloaded).
 */
type AppState = 'not-deployed' | 'live' | 'unhealthy' | 'on-fallback' | 'down' | 'mismatch';

/** The color that is not live: warm (healthy, the instant rollback), stopped, or in trouble; none before a first deploy. */
type StandbyState = 'warm' | 'unhealthy' | 'down' | 'stopped' | 'none';

export function appStateOf(
  enabled: Color | undefined,
  serving: Color | undefined,
  colors: Record<Color, ColorStatus>,
): { state: AppState; standby: StandbyState } {
  if (!enabled) return { state: 'not-deployed', standby: 'none' };
  const other = colors[otherColor(enabled)].state;
  const standby: StandbyState = other === 'healthy' ? 'warm' : other;
  const liveHealthy = colors[enabled].state === 'healthy';
  if (!serving) return { state: 'down', standby };
  if (serving !== enabled) return { state: liveHealthy ? 'mismatch' : 'on-fallback', standby };
  return { state: liveHealthy ? 'live' : 'unhealthy', standby };
}

export interface AppStatus {
  app: string;
  state: AppState;
  standby: StandbyState;
  enabled: Color | null;
  /** What a request through the public port shows right now (null: no answer). */
  serving: Color | null;
  colors: Record<Color, ColorStatus>;
  deploying: { id: string; ref: string | null; step: string | null; pid: number } | null;
  /** The pid of the duet serve that supervises the app, or null when none runs. */
  supervisedBy: number | null;
  lastFailover: FailoverRecord | null;
  /** The last time both colors crashed within a minute (supervision's record). */
  bothCrashed: BothCrashedRecord | null;
  /**
   * The breaking release the live color runs (no fallback, the other color stopped, a rollback to
   * `before` refused without --force); null when the live commit is not one.
   */
  breaking: BreakingRecord | null;
  /** With tls: the certificate nginx presents now (null fields: no HTTPS answer); null without tls. */
  tls: { mode: 'files' | 'acme'; expiresAt: string | null; daysLeft: number | null } | null;
}

/** Asked of nginx over a handshake, not read from the files: duet's user may not read certbot's. */
async function tlsStatus(app: AppConfig): Promise<AppStatus['tls']> {
  if (app.tls.mode === 'off') return null;
  const served = await servedCertificate(app, 1000);
  if (!served) return { mode: app.tls.mode, expiresAt: null, daysLeft: null };
  return { mode: app.tls.mode, expiresAt: served.notAfter.toISOString(), daysLeft: Math.floor((served.notAfter.getTime() - Date.now()) / 86_400_000) };
}

/** Everything read from the machine at this moment: nginx's config, /proc, the checkouts. */
export async function appStatus(config: Config, app: AppConfig): Promise<AppStatus> {
  const supervision = await readSupervision(app);
  const hashes = (await appSettings(app, 'status').catch(() => undefined))?.hashes;
  const [enabled, serving, blue, green, deploying, tls, breaking] = await Promise.all([
    switchOf(app).configuredColor(config),
    switchOf(app).servingColor({ timeoutMs: 1000 }),
    colorStatus(app, 'blue', supervision, hashes),
    colorStatus(app, 'green', supervision, hashes),
    currentDeploy(config, app),
    tlsStatus(app),
    readBreaking(app),
  ]);
  const liveSha = enabled ? (enabled === 'blue' ? blue : green).revision : null;
  const supervisor = supervision && (await isSameProcessAlive(supervision)) ? supervision.pid : null;
  return {
    app: app.name,
    ...appStateOf(enabled, serving, { blue, green }),
    enabled: enabled ?? null,
    serving: serving ?? null,
    colors: { blue, green },
    deploying,
    supervisedBy: supervisor,
    lastFailover: supervision?.lastFailover ?? null,
    bothCrashed: supervision?.bothCrashed ?? null,
    breaking: breaking && liveSha !== null && breaking.sha === liveSha ? breaking : null,
    tls,
  };
}

async function colorStatus(app: AppConfig, color: Color, supervision: SupervisionRecord | undefined, hashes: ConfigHashes | undefined): Promise<ColorStatus> {
  const [running, revision, prepared, record] = await Promise.all([
    runnerOf(app).running(color),
    checkedOutRevision(app.paths.checkout[color]),
    readPrepared(app, color),
    readPidfile(app.paths.pidfile[color]),
  ]);
  const healthy = running ? (await checkHealth(app, color, 1000)).state === 'healthy' : false;
  const watched = supervision?.colors[color];
  return {
    port: app.endpoints[color].kind === 'port' ? app.ports[color] : endpointText(app.endpoints[color]),
    pid: running?.pid ?? null,
    state: running ? (healthy ? 'healthy' : 'unhealthy') : record ? 'down' : 'stopped',
    running: running !== undefined,
    healthy,
    restarts: watched?.restarts ?? null,
    downSince: healthy ? null : (watched?.downSince ?? null),
    lastProblem: watched?.lastProblem ?? null,
    revision: running?.sha ?? revision ?? null,
    ref: running?.ref ?? (prepared && prepared.sha === revision ? prepared.ref : null),
    startedAt: running?.startedAt ?? null,
    configChanged: (running && hashes && configChangeOf(hashes, prepared?.sha === running.sha ? prepared : undefined, running)) || null,
  };
}

async function currentDeploy(config: Config, app: AppConfig): Promise<AppStatus['deploying']> {
  const holder = await lockHolder(app);
  if (!holder) return null;
  const open = (await appJournal(config, app.name).unfinished()).at(-1);
  const last = open?.steps.at(-1);
  return { id: open?.id ?? 'starting', ref: open?.ref ?? null, step: last?.name ?? null, pid: holder.pid };
}

/** What `duet status` and the dashboard say of a color whose configuration changed since its start. */
export function configChangeText(change: 'configuration' | 'environment'): string {
  return change === 'environment'
    ? 'environment changed since start: restart pending (duet restart)'
    : 'configuration changed since start: deploy again to apply it';
}

/** What `duet status` and the dashboard say while a breaking release is live. */
export function breakingLine(breaking: BreakingRecord): string {
  const before = breaking.before ? `; a rollback to ${breaking.before.slice(0, 7)} needs --force` : '';
  return `${breaking.sha.slice(0, 7)} (deploy ${breaking.deploy}, ${breaking.at}): no fallback to the other color, which stays stopped${before}`;
}
