import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { checkedOutRevision } from '../instance/checkout.js';
import { checkHealth } from '../instance/health.js';
import { runnerOf } from '../instance/runner.js';
import { recordStep } from './deploy.js';
import type { DeployObserver } from './observer.js';
import { runOperation } from './operation.js';
import { liveColor, switchAndVerify } from './switch-step.js';

export interface FailoverResult {
  id: string;
  from: Color;
  to: Color;
  sha: string;
  ref: string;
  /** The commit of the color that is no longer live (its checkout), when it can be read. */
  fromSha: string | null;
}

/**
 * Send the app's traffic from the live color `from`, which does not come back healthy, to the
 * warm standby: the switch and verify of a deploy, and nothing else (nothing is fetched, built or
 * started). Journaled as a run of kind `failover` with the reason, so history, the dashboard and
 * `duet status` show it. Never waits for the lock: a deploy that holds it owns the colors.
 */
export async function failover(config: Config, app: AppConfig, options: { from: Color; reason: string; observer: DeployObserver }): Promise<FailoverResult> {
  const { from, reason } = options;
  const to = otherColor(from);
  return runOperation(config, app, { kind: 'failover', command: `failover from ${from}`, reason, wait: false, observer: options.observer }, async (run) => {
    const standby = await run.step('health', `check that ${to} runs and is healthy`, async () => {
      const live = await liveColor(run);
      if (live !== from) {
        throw new DuetError(`${from} is no longer live (nginx points at ${live ?? 'nothing'}): nothing to fail over`, { step: 'health' });
      }
      const instance = await runnerOf(app).running(to);
      const report = instance ? await checkHealth(app, to) : undefined;
      if (!instance || report?.state !== 'healthy') {
        throw new DuetError(`${to} cannot take over: ${instance ? `GET ${app.health.path} answered ${report?.detail}` : 'it is not running'}`, {
          step: 'health',
          hint: `bring ${to} back (duet start-instance ${app.name} ${to}) or deploy a working version`,
        });
      }
      return { value: instance, detail: `${to} runs ${instance.sha.slice(0, 7)} (${instance.ref}) and answers ${report.detail}` };
    });
    await run.fact({ sha: standby.sha, resolvedRef: standby.ref, from, to });
    const fromSha = (await checkedOutRevision(app.paths.checkout[from])) ?? null;
    await switchAndVerify(run, to, { switched: app });
    await recordStep(run, `failed over from ${from} to ${to}: ${reason}`);
    return { value: { id: run.id, from, to, sha: standby.sha, ref: standby.ref, fromSha } };
  });
}
