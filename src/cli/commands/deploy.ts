import { deploy as runDeploy } from '../../pipeline/deploy.js';
import { waitForChecks } from '../checks-wait.js';
import { appFrom, print, type Command } from '../command.js';
import { progressObserver } from '../progress.js';

export const deploy: Command = {
  name: 'deploy',
  summary: 'deploy REF (default: the tip of the first deploy_on branch) to the idle color and switch',
  usage: 'deploy [app] [--ref REF] [--breaking] [--skip-checks] [--no-wait]',
  options: { ref: { type: 'string' }, breaking: { type: 'boolean' }, 'skip-checks': { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, deploy);
    const observer = progressObserver(context.stderr);
    try {
      const ref = typeof context.values.ref === 'string' ? context.values.ref : undefined;
      const skip = context.values['skip-checks'] === true;
      // deploy_on.wait_for_checks: the commit CI passed for, exactly; --skip-checks: said so in the journal.
      const checked = app.deploy_on.wait_for_checks && !skip ? await waitForChecks(config, app, ref, (line) => print(context.stderr, line)) : undefined;
      const result = await runDeploy(config, app, {
        ref,
        ...(checked && { pinnedSha: checked, exact: true }),
        ...(skip && app.deploy_on.wait_for_checks && { reason: 'CI not waited for (--skip-checks)' }),
        wait: !context.values['no-wait'],
        breaking: context.values.breaking === true,
        observer,
      });
      const seconds = (result.ms / 1000).toFixed(1);
      print(
        context.stdout,
        result.outcome === 'noop'
          ? `${app.name}: ${result.sha.slice(0, 7)} is already live on ${result.color}; nothing to do (deploy ${result.id})`
          : `${app.name}: ${result.sha.slice(0, 7)} live on ${result.color} in ${seconds}s (deploy ${result.id})`,
      );
    } finally {
      observer.stop();
    }
  },
};
