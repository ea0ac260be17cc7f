import { validateCommitPrefix } from '../../instance/git-ref.js';
import { rollbackTargetOf } from '../../pipeline/release-pick.js';
import { liveCommit, rollback as runRollback } from '../../pipeline/rollback.js';
import { appFrom, print, type Command } from '../command.js';
import { progressObserver } from '../progress.js';

export const rollback: Command = {
  name: 'rollback',
  summary: 'switch back to the other color, which holds the previous release, or restore a kept release (no rebuild)',
  usage: 'rollback [app] [--to COMMIT|REF | --steps N] [--from SHA] [--force] [--no-wait]',
  options: { from: { type: 'string' }, to: { type: 'string' }, steps: { type: 'string' }, force: { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, rollback);
    const target = rollbackTargetOf(context.values.to, context.values.steps, { to: '--to', steps: '--steps' });
    // Without --from, the commit live as the command starts: when another rollback or a deploy
    // holds the app's lock meanwhile and changes it, this one changes nothing.
    const from = context.values.from !== undefined ? validateCommitPrefix(context.values.from, '--from') : (await liveCommit(config, app)).sha;
    const observer = progressObserver(context.stderr);
    try {
      const result = await runRollback(config, app, { from, target, wait: !context.values['no-wait'], force: context.values.force === true, observer });
      print(
        context.stdout,
        `${app.name}: rolled back from ${from.slice(0, 7)} to ${result.sha.slice(0, 7)} on ${result.color} in ${(result.ms / 1000).toFixed(2)}s`,
      );
    } finally {
      observer.stop();
    }
  },
};
