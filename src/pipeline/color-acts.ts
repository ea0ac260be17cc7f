import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { resolveRef, type ResolvedRef } from '../instance/checkout.js';
import { checkHealth, waitUntilHealthy } from '../instance/health.js';
import type { InstanceRecord, StopOutcome } from '../instance/pidfile.js';
import { runnerOf, stillRunning } from '../instance/runner.js';
import { preparedRelease, updateInstance, type UpdateOutcome } from '../instance/update.js';
import { switchOf } from '../switch/switch.js';
import type { OutputSink } from '../util/run.js';
import { logAndShow, runOperation, type OperationOptions } from './operation.js';
import { appForSwitch } from './breaking.js';
import { buildSlot } from './build-slot.js';
import { liveColor, switchAndVerify } from './switch-step.js';

/**
 * start-instance, stop-instance, connect-to-nginx and update-instance, as operations of the
 * pipeline: each takes the app's lock, as a deploy does, so a color is never started or stopped
 * under a running deploy (which would find its idle color gone between health and switch, or its
 * checkout's instance replaced), and each is journaled with the steps it shares with a deploy.
 */

/** Start a color from its prepared checkout and wait until it answers its health check. */
export function startColor(config: Config, app: AppConfig, color: Color, options: OperationOptions): Promise<InstanceRecord> {
  return runOperation(config, app, { ...options, kind: 'start-instance', command: `start-instance ${color}` }, async (run) => {
    const prepared = await preparedRelease(app, color);
    if (!prepared) {
      throw new DuetError(`${color} has no completely prepared checkout to start`, {
        step: 'start',
        hint: `prepare it first: duet update-instance ${color} --ref <ref>`,
      });
    }
    await run.fact({ sha: prepared.sha, resolvedRef: prepared.ref, to: color });
    const record = await run.step('start', `start ${color} at ${prepared.ref}`, async () => ({
      value: await runnerOf(app).start(color, prepared),
    }));
    await run.step('health', `wait until ${color} is healthy`, async () => {
      await waitUntilHealthy(app, color, { isAlive: stillRunning(record) });
      return { value: undefined };
    });
    return { value: record };
  });
}

/**
 * Refuses to stop a color that answers the public port: the live one, or the standby while the
 * live one is down and the standby answers through nginx's fallback. Asked under the lock: a
 * deploy that just switched made the other color the live one.
 */
async function refuseIfServing(config: Config, app: AppConfig, color: Color, step: 'retire' | 'update', what: string): Promise<void> {
  const live = await switchOf(app).configuredColor(config);
  const answering = live === color ? undefined : await switchOf(app).servingColor();
  if (live !== color && answering !== color) return;
  const why =
    live === color ? 'the color nginx serves' : `what answers ${app.name}'s public port: ${live} (live) is down and ${color} answers through nginx's fallback`;
  throw new DuetError(`${color} is ${why}; ${what} takes ${app.name} down`, {
    step,
    hint:
      live === color
        ? 'switch to the other color first, or pass --force if that is what you want'
        : `make ${color} live first (duet connect-to-nginx ${app.name} ${color}) or bring ${live} back (duet start-instance ${app.name} ${live}); --force if that is what you want`,
  });
}

/** Stop a color; the one that answers the public port only with `force` (it takes the app down). */
export function stopColor(config: Config, app: AppConfig, color: Color, options: OperationOptions & { force: boolean }): Promise<StopOutcome> {
  return runOperation(config, app, { ...options, kind: 'stop-instance', command: `stop-instance ${color}` }, async (run) => {
    if (!options.force) await refuseIfServing(config, app, color, 'retire', 'stopping it');
    const outcome = await run.step('retire', `stop ${color}`, async () => {
      const stopped = await runnerOf(app).stop(color);
      return { value: stopped, skipped: stopped === 'not-running', detail: `${color} ${stopped}` };
    });
    return { value: outcome, outcome: outcome === 'not-running' ? 'noop' : 'success' };
  });
}

/** duet down: both colors stopped, whatever serves (the files stay for bootup). */
export function stopBothColors(config: Config, app: AppConfig, options: OperationOptions): Promise<Record<Color, StopOutcome>> {
  return runOperation(config, app, { ...options, kind: 'down', command: 'down' }, async (run) => {
    const outcomes = { blue: 'not-running', green: 'not-running' } as Record<Color, StopOutcome>;
    for (const color of ['blue', 'green'] as const) {
      outcomes[color] = await run.step('retire', `stop ${color}`, async () => {
        const stopped = await runnerOf(app).stop(color);
        return { value: stopped, skipped: stopped === 'not-running', detail: `${color} ${stopped}` };
      });
    }
    return { value: outcomes, outcome: outcomes.blue === 'not-running' && outcomes.green === 'not-running' ? 'noop' : 'success' };
  });
}

/**
 * Point nginx at a color, under the lock. A color that does not answer its health check is
 * refused (nginx is left as it was) unless `force`; a healthy one is verified through the
 * public port, as a deploy's switch is.
 */
export function connectColor(config: Config, app: AppConfig, color: Color, options: OperationOptions & { force: boolean; output?: OutputSink }): Promise<void> {
  return runOperation(config, app, { ...options, kind: 'connect-to-nginx', command: `connect-to-nginx ${color}` }, async (run) => {
    const from = (await liveColor(run)) ?? null;
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
    // A breaking release keeps nginx without the fallback whoever points nginx at it.
    const switched = await appForSwitch(app, (await runnerOf(app).running(color))?.sha);
    await switchAndVerify(run, color, { switched, verify: health.state === 'healthy', output: logAndShow(run, options.output) });
    return { value: undefined };
  });
}

/**
 * Check out `ref` into a color's directory, install, build (update-instance). The color that
 * answers the public port only with `force`: updating it stops the app.
 */
export function updateColor(
  config: Config,
  app: AppConfig,
  color: Color,
  ref: string,
  options: OperationOptions & { force: boolean; output?: OutputSink },
): Promise<{ target: ResolvedRef; outcome: UpdateOutcome }> {
  return runOperation(config, app, { ...options, kind: 'update-instance', command: `update-instance ${color} ${ref}`, ref }, async (run) => {
    if (!options.force) await refuseIfServing(config, app, color, 'update', 'updating it');
    const target = await run.step('resolve', `resolve ${ref}`, async () => {
      const resolved = await resolveRef(app.clone_url, ref);
      return { value: resolved, detail: `${resolved.ref} is ${resolved.sha}` };
    });
    await run.fact({ sha: target.sha, resolvedRef: target.ref, to: color });
    const outcome = await run.step('update', `update ${color} to ${target.sha.slice(0, 7)}`, async () => {
      const output = logAndShow(run, options.output);
      const slot = buildSlot(config, app, (line) => output.write(`duet: ${line}\n`));
      const updated = await updateInstance(app, color, target, output, { buildSlot: slot });
      return { value: updated, skipped: updated.kind === 'already-prepared' };
    });
    return { value: { target, outcome } };
  });
}
