import { setTimeout as sleep } from 'node:timers/promises';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { appSettings } from '../instance/app-env.js';
import { requireSecrets } from '../instance/app-secrets.js';
import { checkHealth, waitUntilHealthy } from '../instance/health.js';
import { markLive, runnerOf, stillRunning, type InstanceRecord, type Revision } from '../instance/runner.js';
import { WATCH_PROBE_TIMEOUT_MS, watchInstance } from '../instance/watch.js';
import { appForSwitch } from './breaking.js';
import type { DeployRun, StepResult } from './run.js';
import { connectWithin, liveColor, switchAndVerify } from './switch-step.js';

/**
 * The second half of every deploy and of a rollback: start the target color, wait for health,
 * point nginx at it, verify through the public port, watch it serve for health.watch_s, retire
 * the previous color. Each step looks at the machine first and is skipped when its result is
 * already there.
 */
export async function goLive(run: DeployRun, target: Color, revision: Revision): Promise<void> {
  const { app } = run;
  const previous = otherColor(target);
  // Read now, not between "healthy" and the switch, where every ms delays the new color.
  await liveColor(run);
  // A breaking release: no fallback to the other color, which is stopped after the drain.
  const switched = await appForSwitch(app, revision.sha);
  const breaking = switched !== app;

  await run.step('start', `start ${target} at ${revision.sha.slice(0, 7)}`, async () => {
    const settings = await appSettings(app, 'start');
    await requireSecrets(app, settings.files, 'start');
    const running = await runnerOf(app).running(target);
    const current = running?.config === settings.hashes.run;
    if (running?.sha === revision.sha && current) {
      run.carried.target = { color: target, instance: running };
      return { value: undefined, skipped: true, detail: `already running as pid ${running.pid}` };
    }
    if (running) await runnerOf(app).stop(target);
    const started = await runnerOf(app).start(target, revision, settings);
    run.carried.target = { color: target, instance: started };
    const why =
      running?.sha === revision.sha
        ? ` (restarted: ${running.envFiles === settings.hashes.envFiles ? 'configuration' : 'environment'} changed since its start)`
        : '';
    return { value: undefined, detail: `pid ${started.pid}${why}` };
  });

  await run.step('health', `wait for ${target} to answer ${app.health.path}`, async () => {
    const report = await waitUntilHealthy(app, target, { isAlive: stillRunning(await targetInstance(run, target)) });
    return { value: undefined, detail: report.detail };
  });

  await switchAndVerify(run, target, { switched, backOnFailure: true });

  await run.step('watch', `watch ${target} for ${app.health.watch_s} s`, () => watchAfterSwitch(run, target));

  await run.step('retire', `retire ${previous} (standby: ${app.standby})`, async () => {
    const running = await runnerOf(app).running(previous);
    if (!running) return { value: undefined, skipped: true, detail: `${previous} is not running` };
    if (app.standby === 'keep' && !breaking) return { value: undefined, skipped: true, detail: `${previous} stays warm for rollback` };
    // Requests that nginx already sent to the old color finish before it goes.
    if (app.drain_s > 0) await sleep(app.drain_s * 1000);
    const how = await runnerOf(app).stop(previous);
    const why = breaking ? ' (a breaking release: the old version cannot run against its schema)' : '';
    return { value: undefined, detail: `${previous} ${how} after ${app.drain_s}s drain${why}` };
  });
}

/** The target's instance as the start step left it; read from the machine when this run did not start it. */
async function targetInstance(run: DeployRun, target: Color): Promise<InstanceRecord | undefined> {
  const carried = run.carried.target;
  return carried?.color === target ? carried.instance : runnerOf(run.app).running(target);
}

/**
 * The new color has passed one health check and serves traffic; a bug that shows only under
 * traffic, or a crash a moment after start, shows now. Watched for health.watch_s from the moment
 * it went live (a re-run after a crash goes on from there), with the previous color still
 * running: on a verdict, traffic goes back to it and the new color is stopped.
 */
async function watchAfterSwitch(run: DeployRun, target: Color): Promise<StepResult<undefined>> {
  const { app } = run;
  const durationMs = app.health.watch_s * 1000;
  if (durationMs === 0) return { value: undefined, skipped: true, detail: 'health.watch_s is 0' };
  const instance = await targetInstance(run, target);
  const since = instance ? (await markLive(app, instance)).getTime() : Date.now();
  if (instance && Date.now() - since >= durationMs) {
    return { value: undefined, skipped: true, detail: `live and watched since ${new Date(since).toISOString()}` };
  }
  const verdict = instance
    ? await watchInstance(app, target, instance, durationMs, since)
    : ({ state: 'exited', afterMs: 0, detail: 'is not running' } as const);
  if (verdict.state === 'healthy') {
    return { value: undefined, detail: `healthy for ${app.health.watch_s} s (${verdict.probes} probes, slowest ${verdict.slowestMs} ms)` };
  }
  const tail = await runnerOf(app).outputTail(target);
  const back = await switchBackAfterWatch(run, target, verdict.detail);
  throw new DuetError(`${target} ${verdict.detail}; ${back}${tail ? `\n--- end of ${runnerOf(app).outputHint(target)} ---\n${tail}` : ''}`, {
    step: 'watch',
    hint: `read the end of its log (${runnerOf(app).outputHint(target)}); raise health.watch_s or fix the health path if it was only slow`,
  });
}

/**
 * After a failed watch: traffic goes back to the other color when it runs and is healthy, and the
 * failed color is stopped. With nothing healthy to go back to, the failed color stays live (a
 * restart may still bring it back) and the error says so. Returns what was done, for the error.
 */
async function switchBackAfterWatch(run: DeployRun, failed: Color, why: string): Promise<string> {
  const { app } = run;
  const other = otherColor(failed);
  const standby = await runnerOf(app).running(other);
  if (!standby || (await checkHealth(app, other, WATCH_PROBE_TIMEOUT_MS)).state !== 'healthy') {
    run.log.line(`watch failed (${why}) and ${other} is not running and healthy: ${failed} stays live`);
    return `${other} is not running and healthy, so ${failed} stays live`;
  }
  run.observer.note(`watch failed: switching back to ${other}`);
  run.log.line(`watch failed (${why}): switching back to ${other}`);
  try {
    await connectWithin(run, other);
  } catch (error) {
    // The watch's verdict stays the headline; the failed switch back is what to fix first.
    return `switching back to ${other} failed (${(error as Error).message.split('\n')[0]}), so ${failed} stays live`;
  }
  await runnerOf(app).stop(failed);
  run.carried.target = undefined;
  return `switched back to ${other} (${standby.sha.slice(0, 7)}) and stopped ${failed}`;
}
