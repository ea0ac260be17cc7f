import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { resolveRef, type ResolvedRef } from '../instance/checkout.js';
import { checkHealth, waitUntilHealthy } from '../instance/health.js';
import type { InstanceRecord, StopOutcome } from '../instance/pidfile.js';
import { startInstance, stillRunning, stopInstance } from '../instance/runner.js';
import { preparedRelease, updateInstance, type UpdateOutcome } from '../instance/update.js';
import { configuredColor, switchProxy, verifyProxy } from '../switch/proxy.js';
import type { OutputSink } from '../util/run.js';
import { journaledAct, logAndShow, type ActOptions } from './act.js';

export type { ActOptions };

/**
 * start-instance, stop-instance, connect-to-nginx and update-instance, as operations of the
 * pipeline: each takes the app's lock, as a deploy does, so a color is never started or stopped
 * under a running deploy (which would find its idle color gone between health and switch, or its
 * checkout's instance replaced), and each is journaled with the steps it shares with a deploy.
 */

/** Start a color from its prepared checkout and wait until it answers its health check. */
export function startColor(config: Config, app: AppConfig, color: Color, options: ActOptions): Promise<InstanceRecord> {
  return journaledAct(config, app, 'start-instance', `start-instance ${color}`, options, async (run) => {
    const prepared = await preparedRelease(app, color);
    if (!prepared) {
      throw new DuetError(`${color} has no completely prepared checkout to start`, {
        step: 'start',
        hint: `prepare it first: duet update-instance ${color} --ref <ref>`,
      });
    }
    await run.fact({ sha: prepared.sha, resolvedRef: prepared.ref, to: color });
    const record = await run.step('start', `start ${color} at ${prepared.ref}`, async () => ({
      value: await startInstance(app, color, prepared),
    }));
    await run.step('health', `wait until ${color} is healthy`, async () => {
      await waitUntilHealthy(app, color, { isAlive: stillRunning(record) });
      return { value: undefined };
    });
    return { value: record };
  });
}

/** Stop a color; the one nginx serves only with `force` (it takes the app down). */
export function stopColor(config: Config, app: AppConfig, color: Color, options: ActOptions & { force: boolean }): Promise<StopOutcome> {
  return journaledAct(config, app, 'stop-instance', `stop-instance ${color}`, options, async (run) => {
    // Asked under the lock: a deploy that just switched made the other color the live one.
    if (!options.force && (await configuredColor(app, config)) === color) {
      throw new DuetError(`${color} is the color nginx serves: stopping it takes ${app.name} down`, {
        step: 'retire',
        hint: 'switch to the other color first, or pass --force if that is what you want',
      });
    }
    const outcome = await run.step('retire', `stop ${color}`, async () => {
      const stopped = await stopInstance(app, color);
      return { value: stopped, skipped: stopped === 'not-running', detail: `${color} ${stopped}` };
    });
    return { value: outcome, outcome: outcome === 'not-running' ? 'noop' : 'success' };
  });
}

/**
 * Point nginx at a color, under the lock. A color that does not answer its health check is
 * refused (nginx is left as it was) unless `force`; a healthy one is verified through the
 * public port, as a deploy's switch is.
 */
export function connectColor(config: Config, app: AppConfig, color: Color, options: ActOptions & { force: boolean; output?: OutputSink }): Promise<void> {
  return journaledAct(config, app, 'connect-to-nginx', `connect-to-nginx ${color}`, options, async (run) => {
    const from = (await configuredColor(app, config)) ?? null;
    await run.fact({ from, to: color });
    const health = await run.step('health', `check that ${color} is healthy`, async () => {
      const found = await checkHealth(app, color);
      if (found.state !== 'healthy' && !options.force) {
        throw new DuetError(`${color} is not healthy (GET ${app.health.path}: ${found.detail}); nginx was left as it was`, {
          step: 'health',
          hint: `start it (duet start-instance ${color}) or pass --force`,
        });
      }
      return { value: found, detail: `${found.state}: ${found.detail}` };
    });
    const switched = await run.step('switch', `point nginx at ${color}`, async () => ({
      value: await switchProxy(app, config, color, { output: logAndShow(run, options.output) }),
    }));
    if (health.state === 'healthy') {
      await run.step('verify', `check that the public port reaches ${color}`, async () => {
        await verifyProxy(app, color, { reload: switched.reload });
        return { value: undefined };
      });
    }
    return { value: undefined };
  });
}

/**
 * Check out `ref` into a color's directory, install, build (update-instance). The color nginx
 * serves only with `force`: updating it stops the app.
 */
export function updateColor(
  config: Config,
  app: AppConfig,
  color: Color,
  ref: string,
  options: ActOptions & { force: boolean; output?: OutputSink },
): Promise<{ target: ResolvedRef; outcome: UpdateOutcome }> {
  return journaledAct(config, app, 'update-instance', `update-instance ${color} ${ref}`, { ...options, ref }, async (run) => {
    if (!options.force && (await configuredColor(app, config)) === color) {
      throw new DuetError(`${color} is the color nginx serves: updating it stops ${app.name}`, {
        step: 'update',
        hint: 'update the idle color (duet disabled-instance), or pass --force',
      });
    }
    const target = await run.step('resolve', `resolve ${ref}`, async () => {
      const resolved = await resolveRef(app.clone_url, ref);
      return { value: resolved, detail: `${resolved.ref} is ${resolved.sha}` };
    });
    await run.fact({ sha: target.sha, resolvedRef: target.ref, to: color });
    const outcome = await run.step('update', `update ${color} to ${target.sha.slice(0, 7)}`, async () => {
      const updated = await updateInstance(app, color, target, logAndShow(run, options.output));
      return { value: updated, skipped: updated.kind === 'already-prepared' };
    });
    return { value: { target, outcome } };
  });
}
