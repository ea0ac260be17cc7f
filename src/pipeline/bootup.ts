import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { waitUntilHealthy } from '../instance/health.js';
import { runnerOf, stillRunning } from '../instance/runner.js';
import { preparedRelease } from '../instance/update.js';
import { ensureManagedNginx } from '../switch/managed-nginx.js';
import { switchOf } from '../switch/switch.js';
import { appForSwitch, readBreaking } from './breaking.js';
import type { DeployObserver } from './observer.js';
import { runOperation } from './operation.js';
import { liveColor, switchAndVerify } from './switch-step.js';

interface BootupResult {
  enabled: Color | undefined;
  standby: 'started' | 'running' | 'none' | 'failed' | 'not-kept';
}

/**
 * After a reboot nothing runs but the files on disk say what was live. Start the enabled color,
 * re-apply the proxy, verify, and with `standby: keep` bring the standby back as well. Journaled
 * (kind bootup), under the app's lock: a deploy the reboot cut short is closed as interrupted.
 */
export async function bootup(config: Config, app: AppConfig, observer: DeployObserver): Promise<BootupResult> {
  return runOperation<BootupResult>(config, app, { kind: 'bootup', command: 'bootup', wait: true, observer }, async (run) => {
    await ensureManagedNginx(config);
    await runnerOf(app).ready();
    const enabled = await liveColor(run);
    if (!enabled) {
      observer.note(`${app.name}: nothing was ever deployed; nothing to start`);
      return { value: { enabled: undefined, standby: 'none' }, outcome: 'noop' };
    }
    await run.fact({ to: enabled });
    const how = await run.step('start', `start the enabled ${enabled}`, async () => {
      const started = await startPrepared(app, enabled, observer);
      if (!started) {
        throw new DuetError(`nginx points at ${enabled}, but its checkout holds no completely prepared release`, {
          step: 'start',
          hint: 'deploy again: duet deploy --ref <tag>',
        });
      }
      return { value: started, skipped: started === 'running', detail: `${enabled} ${started}` };
    });
    // Re-applied after the start: in socket mode the new socket must be opened up for nginx.
    const switched = await appForSwitch(app, (await runnerOf(app).running(enabled))?.sha);
    await switchAndVerify(run, enabled, { switched, what: `point nginx at ${enabled} again`, again: true });
    observer.note(`${app.name}: ${enabled} is live (${how})`);
    if (app.standby !== 'keep') return { value: { enabled, standby: 'not-kept' } };
    const standby = otherColor(enabled);
    try {
      const standbyHow = await run.step<BootupResult['standby']>('start', `start the standby ${standby}`, async () => {
        const pre = await fromBeforeBreaking(app, enabled, standby);
        if (pre) return { value: 'none', skipped: true, detail: pre };
        const started = await startPrepared(app, standby, observer);
        // Its new socket has the app's umask: opened to nginx's workers, it is the fallback again.
        if (started && app.fallback) switchOf(app).openToNginx(standby);
        return { value: started ?? 'none', skipped: started !== 'started', detail: `${standby} ${started ?? 'has no prepared release'}` };
      });
      return { value: { enabled, standby: standbyHow } };
    } catch (error) {
      // A standby that fails to come back costs the instant rollback, not the live service.
      observer.note(`standby ${standby} did not come back: ${(error as Error).message}`);
      return { value: { enabled, standby: 'failed' } };
    }
  });
}

/** Why the standby stays stopped: it holds the commit from before the breaking release the enabled color runs. */
async function fromBeforeBreaking(app: AppConfig, enabled: Color, standby: Color): Promise<string | undefined> {
  const breaking = await readBreaking(app);
  if (!breaking?.before || (await runnerOf(app).running(enabled))?.sha !== breaking.sha) return undefined;
  if ((await preparedRelease(app, standby))?.sha !== breaking.before) return undefined;
  return `${standby} holds ${breaking.before.slice(0, 7)}, from before the breaking release ${breaking.sha.slice(0, 7)}: it stays stopped`;
}

async function startPrepared(app: AppConfig, color: Color, observer: DeployObserver): Promise<'started' | 'running' | undefined> {
  if (await runnerOf(app).running(color)) return 'running';
  const prepared = await preparedRelease(app, color);
  if (!prepared) return undefined;
  observer.note(`starting ${color} at ${prepared.sha.slice(0, 7)} (${prepared.ref})`);
  const started = await runnerOf(app).start(color, prepared);
  await waitUntilHealthy(app, color, { isAlive: stillRunning(started) });
  return 'started';
}
