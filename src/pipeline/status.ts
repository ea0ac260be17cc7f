import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { checkedOutRevision } from '../instance/checkout.js';
import { endpointOf, endpointText } from '../instance/endpoint.js';
import { checkHealth } from '../instance/health.js';
import { readPrepared } from '../instance/prepared.js';
import { runningInstance } from '../instance/runner.js';
import { configuredColor, servingColor } from '../switch/proxy.js';
import { Journal } from './journal.js';
import { lockHolder } from './lock.js';

export interface ColorStatus {
  port: number | string;
  pid: number | null;
  running: boolean;
  healthy: boolean;
  revision: string | null;
  ref: string | null;
  startedAt: string | null;
}

export interface AppStatus {
  app: string;
  enabled: Color | null;
  /** What a request through the public port shows right now (null: no answer). */
  serving: Color | null;
  colors: Record<Color, ColorStatus>;
  deploying: { id: string; ref: string | null; step: string | null; pid: number } | null;
}

/** Everything read from the machine at this moment: nginx's config, /proc, the checkouts. */
export async function appStatus(config: Config, app: AppConfig): Promise<AppStatus> {
  const [enabled, serving, blue, green, deploying] = await Promise.all([
    configuredColor(app, config),
    servingColor(app, { timeoutMs: 1000 }),
    colorStatus(app, 'blue'),
    colorStatus(app, 'green'),
    currentDeploy(app),
  ]);
  return { app: app.name, enabled: enabled ?? null, serving: serving ?? null, colors: { blue, green }, deploying };
}

async function colorStatus(app: AppConfig, color: Color): Promise<ColorStatus> {
  const [running, revision, prepared] = await Promise.all([
    runningInstance(app, color),
    checkedOutRevision(app.paths.checkout[color]),
    readPrepared(app, color),
  ]);
  const healthy = running ? (await checkHealth(app, color, 1000)).state === 'healthy' : false;
  return {
    port: endpointOf(app, color).kind === 'port' ? app.ports[color] : endpointText(endpointOf(app, color)),
    pid: running?.pid ?? null,
    running: running !== undefined,
    healthy,
    revision: running?.sha ?? revision ?? null,
    ref: running?.ref ?? (prepared && prepared.sha === revision ? prepared.ref : null),
    startedAt: running?.startedAt ?? null,
  };
}

async function currentDeploy(app: AppConfig): Promise<AppStatus['deploying']> {
  const holder = await lockHolder(app);
  if (!holder) return null;
  const open = (await new Journal(app.paths.journal).unfinished()).at(-1);
  const last = open?.steps.at(-1);
  return { id: open?.id ?? 'starting', ref: open?.ref ?? null, step: last?.name ?? null, pid: holder.pid };
}
