import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { runnerOf } from '../instance/runner.js';
import { connectToNginx, switchOf } from '../switch/switch.js';
import type { OutputSink } from '../util/run.js';
import type { DeployRun } from './run.js';

/** What nginx points at: read from the machine once per run, then carried (run.ts, Carried). */
export async function liveColor(run: DeployRun): Promise<Color | undefined> {
  if (run.carried.live === undefined) run.carried.live = (await switchOf(run.app).configuredColor(run.config)) ?? null;
  return run.carried.live ?? undefined;
}

interface SwitchOptions {
  /** The app as the switch renders it: appForSwitch's, without the fallback for a breaking release. */
  switched: AppConfig;
  /** The switch step's words; `point nginx at <color>` by default. */
  what?: string;
  /** Done again, not skipped, when nginx already points at the color (bootup: nginx came up anew). */
  again?: boolean;
  /** false: switched only (connect-to-nginx --force of a color that does not answer its health check). */
  verify?: boolean;
  /** A verify that fails switches back to the color that was live, when it runs, and stops this one. */
  backOnFailure?: boolean;
  output?: OutputSink;
}

/**
 * The switch and verify steps of every operation that points nginx at a color: a deploy's and a
 * rollback's go-live, a failover, bootup, connect-to-nginx.
 */
export async function switchAndVerify(run: DeployRun, color: Color, options: SwitchOptions): Promise<void> {
  const { app, config } = run;
  const wasLive = await liveColor(run);
  const switched = await run.step('switch', options.what ?? `point nginx at ${color}`, async () => {
    // Applied even when the config already names the color: idempotent, and it brings back a
    // managed nginx that is not running or a socket nginx's workers cannot reach.
    // Unknown while it switches: a switch that fails halfway is read from the machine after.
    run.carried.live = undefined;
    const value = await switchOf(options.switched).switchTo(config, color, { output: options.output ?? run.log });
    run.carried.live = color;
    if (wasLive === color && !options.again) return { value, skipped: true, detail: `nginx already points at ${color}` };
    return { value, detail: switchOf(options.switched).switchDetail };
  });
  if (options.verify === false) return;
  await run.step('verify', `check that the public port is served by ${color}`, async () => {
    try {
      return { value: undefined, detail: await switchOf(app).verify(color, { reload: switched.reload }) };
    } catch (error) {
      if (options.backOnFailure) await switchBack(run, wasLive, color);
      throw error;
    }
  });
}

/**
 * Outside the steps (a pick that finds only the fallback serving, a watch's switch back): the
 * switch and the verify in one, and the run's live color follows.
 */
export async function connectWithin(run: DeployRun, color: Color): Promise<void> {
  run.carried.live = undefined;
  await connectToNginx(run.app, run.config, color, { output: run.log });
  run.carried.live = color;
}

/** A switch whose result nginx does not serve is undone, if there is something to go back to. */
async function switchBack(run: DeployRun, wasLive: Color | undefined, target: Color): Promise<void> {
  const { app, config } = run;
  if (!wasLive || wasLive === target || !(await runnerOf(app).running(wasLive))) {
    run.log.line(`verify failed and there is no running previous color to switch back to`);
    return;
  }
  run.log.line(`verify failed: switching back to ${wasLive}`);
  run.observer.note(`verify failed: switching back to ${wasLive}`);
  run.carried.live = undefined;
  await switchOf(app).switchTo(config, wasLive, { output: run.log });
  run.carried.live = wasLive;
  await runnerOf(app).stop(target);
  run.carried.target = undefined;
}
