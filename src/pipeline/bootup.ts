import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { waitUntilHealthy } from '../instance/health.js';
import { runnerReady, runningInstance, startInstance, stillRunning } from '../instance/runner.js';
import { preparedRelease } from '../instance/update.js';
import { ensureManagedNginx } from '../switch/managed-nginx.js';
import { configuredColor, connectToNginx } from '../switch/proxy.js';
import { makeSocketReachable } from '../switch/socket-permissions.js';
import { acquireLock } from './lock.js';
import type { DeployObserver } from './observer.js';

export interface BootupResult {
  enabled: Color | undefined;
  standby: 'started' | 'running' | 'none' | 'failed' | 'not-kept';
}

/**
 * After a reboot nothing runs but the files on disk say what was live. Start the enabled color,
 * re-apply the proxy, verify, and with `standby: keep` bring the standby back as well.
 */
export async function bootup(config: Config, app: AppConfig, observer: DeployObserver): Promise<BootupResult> {
  const lock = await acquireLock(app, { command: 'bootup', wait: true, onWait: (h) => observer.note(`waiting for pid ${h.pid} (${h.command})`) });
  try {
    await ensureManagedNginx(config);
    await runnerReady(app);
    const enabled = await configuredColor(app, config);
    if (!enabled) {
      observer.note(`${app.name}: nothing was ever deployed; nothing to start`);
      return { enabled: undefined, standby: 'none' };
    }
    if (!(await startPrepared(app, enabled, observer))) {
      throw new DuetError(`nginx points at ${enabled}, but its checkout holds no completely prepared release`, {
        step: 'start',
        hint: 'deploy again: duet deploy --ref <tag>',
      });
    }
    // Re-applied after the start: in socket mode the new socket must be opened up for nginx.
    await connectToNginx(app, config, enabled);
    observer.note(`${app.name}: ${enabled} is live`);
    if (app.standby !== 'keep') return { enabled, standby: 'not-kept' };
    const standby = otherColor(enabled);
    try {
      const how = await startPrepared(app, standby, observer);
      // Its new socket has the app's umask: opened to nginx's workers, it is the fallback again.
      if (how && app.switch === 'socket' && app.fallback) makeSocketReachable(app.paths.socket[standby], app.paths.root);
      return { enabled, standby: how ?? 'none' };
    } catch (error) {
      // A standby that fails to come back costs the instant rollback, not the live service.
      observer.note(`standby ${standby} did not come back: ${(error as Error).message}`);
      return { enabled, standby: 'failed' };
    }
  } finally {
    await lock.release();
  }
}

async function startPrepared(app: AppConfig, color: Color, observer: DeployObserver): Promise<'started' | 'running' | undefined> {
  if (await runningInstance(app, color)) return 'running';
  const prepared = await preparedRelease(app, color);
  if (!prepared) return undefined;
  observer.note(`starting ${color} at ${prepared.sha.slice(0, 7)} (${prepared.ref})`);
  const started = await startInstance(app, color, prepared);
  await waitUntilHealthy(app, color, { isAlive: stillRunning(started) });
  return 'started';
}
