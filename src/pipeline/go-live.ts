import { setTimeout as sleep } from 'node:timers/promises';
import { otherColor, type Color } from '../config/schema.js';
import { waitUntilHealthy } from '../instance/health.js';
import { runningInstance, startInstance, stillRunning, stopInstance, type Revision } from '../instance/runner.js';
import { configuredColor, switchProxy, verifyProxy } from '../switch/proxy.js';
import type { DeployRun } from './run.js';

/**
 * The second half of every deploy and of a rollback: start the target color, wait for health,
 * point nginx at it, verify through the public port, retire the previous color. Each step looks
 * at the machine first and is skipped when its result is already there.
 */
export async function goLive(run: DeployRun, target: Color, revision: Revision): Promise<void> {
  const { app, config } = run;
  const previous = otherColor(target);
  // Read now, not between "healthy" and the switch, where every ms delays the new color.
  const wasLive = await configuredColor(app, config);

  await run.step('start', `start ${target} at ${revision.sha.slice(0, 7)}`, async () => {
    const running = await runningInstance(app, target);
    if (running?.sha === revision.sha) return { value: undefined, skipped: true, detail: `already running as pid ${running.pid}` };
    if (running) await stopInstance(app, target);
    const started = await startInstance(app, target, revision);
    return { value: undefined, detail: `pid ${started.pid}` };
  });

  await run.step('health', `wait for ${target} to answer ${app.health.path}`, async () => {
    const report = await waitUntilHealthy(app, target, { isAlive: stillRunning(await runningInstance(app, target)) });
    return { value: undefined, detail: report.detail };
  });

  const switched = await run.step('switch', `point nginx at ${target}`, async () => {
    // Applied even when the config already names the target: idempotent, and it brings back a
    // managed nginx that is not running or a socket nginx's workers cannot reach.
    const value = await switchProxy(app, config, target, { output: run.log });
    if (wasLive === target) return { value, skipped: true, detail: `nginx already points at ${target}` };
    return { value, detail: app.switch === 'socket' ? 'symlink renamed' : 'nginx reloaded' };
  });

  await run.step('verify', `check that the public port is served by ${target}`, async () => {
    try {
      await verifyProxy(app, target, { reload: switched.reload });
    } catch (error) {
      await switchBack(run, wasLive, target);
      throw error;
    }
    return { value: undefined };
  });

  await run.step('retire', `retire ${previous} (standby: ${app.standby})`, async () => {
    const running = await runningInstance(app, previous);
    if (!running) return { value: undefined, skipped: true, detail: `${previous} is not running` };
    if (app.standby === 'keep') return { value: undefined, skipped: true, detail: `${previous} stays warm for rollback` };
    // Requests that nginx already sent to the old color finish before it goes.
    if (app.drain_s > 0) await sleep(app.drain_s * 1000);
    const how = await stopInstance(app, previous);
    return { value: undefined, detail: `${previous} ${how} after ${app.drain_s}s drain` };
  });
}

/** A switch whose result nginx does not serve is undone, if there is something to go back to. */
async function switchBack(run: DeployRun, wasLive: Color | undefined, target: Color): Promise<void> {
  const { app, config } = run;
  if (!wasLive || wasLive === target || !(await runningInstance(app, wasLive))) {
    run.log.line(`verify failed and there is no running previous color to switch back to`);
    return;
  }
  run.log.line(`verify failed: switching back to ${wasLive}`);
  run.observer.note(`verify failed: switching back to ${wasLive}`);
  await switchProxy(app, config, wasLive, { output: run.log });
  await stopInstance(app, target);
}
