import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'node:http';
import { countWindow, lastFailureBefore, type WindowCount } from '../lib/answers.js';
import { startClosedLoad, type LoadKind } from '../lib/closed-load.js';
import { now, type AppEvent } from '../lib/duet-env.js';

/**
 * Section 6 C: requests of death. Under the section's closed-loop load, `GET /request-of-death`
 * (bench/app/server.js: the instance that receives it exits at once, unanswered) is sent through
 * the public port again and again, at the pace of the audit that found duet's fallback replaying
 * it to the standby (60 in 21 s). What counts is what happens to every other request.
 */
export interface DeathSettings {
  /** The section's load: clients per kind, the kinds, and how long it runs before the first death. */
  load: { connections: number; kinds: LoadKind[]; warmMs: number };
  deaths: number;
  intervalMs: number;
  /** The window ends this long after the last death. */
  afterMs: number;
}

export interface DeathRun {
  deaths: number;
  intervalMs: number;
  /** The answers to the requests of death (502 when nginx could not deliver another answer). */
  deathStatuses: Record<string, number>;
  /** The load's requests, from warmMs before the first death to afterMs after the last. */
  window: WindowCount;
  /** Instances that exited in the window (from the app's log), and that listened again. */
  crashes: number;
  restarts: number;
  /** The last death → the end of the last failed request of the load. */
  lastFailureAfterMs: number | null;
  /** duet: whether the live color changed (a failover onto the other version). */
  failedOver: boolean | null;
}

/** One GET through the public port, with a fresh connection; its status, 0 without an answer. */
function getStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Load, then `deaths` requests of death `intervalMs` apart, then afterMs more of load. */
export async function deathsUnderLoad(port: number, death: DeathSettings, events: () => Promise<AppEvent[]>): Promise<Omit<DeathRun, 'failedOver'>> {
  const settings = death.load;
  const load = await startClosedLoad({ port, connections: settings.connections, kinds: settings.kinds });
  const statuses: Record<string, number> = {};
  let first = 0;
  let last = 0;
  try {
    await sleep(settings.warmMs);
    first = now();
    for (let i = 0; i < death.deaths; i += 1) {
      last = now();
      const status = String(await getStatus(port, '/request-of-death'));
      statuses[status] = (statuses[status] ?? 0) + 1;
      await sleep(Math.max(0, last + death.intervalMs - now())); // the attack's pace
    }
    await sleep(death.afterMs);
  } catch (error) {
    await load.stop().catch(() => {});
    throw error;
  }
  const records = await load.stop();
  const to = last + death.afterMs;
  const inWindow = (await events()).filter((e) => (e.event === 'crashed' ? e.crashAt : e.event === 'listening' ? e.listeningAt : 0) >= first);
  return {
    deaths: death.deaths,
    intervalMs: death.intervalMs,
    deathStatuses: statuses,
    window: countWindow(records, first - settings.warmMs, to),
    crashes: inWindow.filter((e) => e.event === 'crashed').length,
    restarts: inWindow.filter((e) => e.event === 'listening').length,
    lastFailureAfterMs: lastFailureBefore(records, last, to),
  };
}
