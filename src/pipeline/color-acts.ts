import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { checkHealth, waitUntilHealthy } from '../instance/health.js';
import type { InstanceRecord, StopOutcome } from '../instance/pidfile.js';
import { startInstance, stillRunning, stopInstance } from '../instance/runner.js';
import { preparedRelease } from '../instance/update.js';
import { configuredColor, switchProxy, verifyProxy } from '../switch/proxy.js';
import type { OutputSink } from '../util/run.js';
import { acquireLock, type LockOwner } from './lock.js';

/**
 * start-instance, stop-instance and connect-to-nginx, as operations of the pipeline: each takes the app's lock, as
 * a deploy does, so a color is never started or stopped under a running deploy (which would find
 * its idle color gone between health and switch, or its checkout's instance replaced).
 */
export interface ActOptions {
  /** false: fail at once when a deploy or another act holds the lock (`--no-wait`). */
  wait: boolean;
  onWait?: (holder: LockOwner) => void;
}

async function underLock<T>(app: AppConfig, command: string, options: ActOptions, act: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(app, { command, wait: options.wait, onWait: options.onWait });
  try {
    return await act();
  } finally {
    await lock.release();
  }
}

/** Start a color from its prepared checkout and wait until it answers its health check. */
export function startColor(app: AppConfig, color: Color, options: ActOptions): Promise<InstanceRecord> {
  return underLock(app, `start-instance ${color}`, options, async () => {
    const prepared = await preparedRelease(app, color);
    if (!prepared) {
      throw new DuetError(`${color} has no completely prepared checkout to start`, {
        step: 'start',
        hint: `prepare it first: duet update-instance ${color} --ref <ref>`,
      });
    }
    const record = await startInstance(app, color, prepared);
    await waitUntilHealthy(app, color, { isAlive: stillRunning(record) });
    return record;
  });
}

/** Stop a color; the one nginx serves only with `force` (it takes the app down). */
export function stopColor(config: Config, app: AppConfig, color: Color, options: ActOptions & { force: boolean }): Promise<StopOutcome> {
  return underLock(app, `stop-instance ${color}`, options, async () => {
    // Asked under the lock: a deploy that just switched made the other color the live one.
    if (!options.force && (await configuredColor(app, config)) === color) {
      throw new DuetError(`${color} is the color nginx serves: stopping it takes ${app.name} down`, {
        step: 'stop',
        hint: 'switch to the other color first, or pass --force if that is what you want',
      });
    }
    return stopInstance(app, color);
  });
}

/**
 * Point nginx at a color, under the lock. A color that does not answer its health check is
 * refused (nginx is left as it was) unless `force`; a healthy one is verified through the
 * public port, as a deploy's switch is.
 */
export function connectColor(config: Config, app: AppConfig, color: Color, options: ActOptions & { force: boolean; output?: OutputSink }): Promise<void> {
  return underLock(app, `connect-to-nginx ${color}`, options, async () => {
    const health = await checkHealth(app, color);
    if (health.state !== 'healthy' && !options.force) {
      throw new DuetError(`${color} is not healthy (GET ${app.health.path}: ${health.detail}); nginx was left as it was`, {
        step: 'switch',
        hint: `start it (duet start-instance ${color}) or pass --force`,
      });
    }
    const switched = await switchProxy(app, config, color, { output: options.output });
    if (health.state === 'healthy') await verifyProxy(app, color, { reload: switched.reload });
  });
}
