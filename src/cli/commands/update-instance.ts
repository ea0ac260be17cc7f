import { UsageError } from '../../errors.js';
import { updateColor } from '../../pipeline/color-acts.js';
import { appAndColorFrom, lockWait, print, type Command } from '../command.js';

export const updateInstance: Command = {
  name: 'update-instance',
  summary: 'stop a color, check out REF into its directory, install, build',
  usage: 'update-instance [app] <color> --ref REF [--force] [--no-wait]',
  options: { ref: { type: 'string' }, force: { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, updateInstance);
    const ref = context.values.ref;
    if (typeof ref !== 'string') throw new UsageError('update-instance needs --ref REF', `usage: duet ${updateInstance.usage}`);
    const { target, outcome } = await updateColor(config, app, color, ref, {
      force: context.values.force === true,
      ...lockWait(context),
      output: context.stderr,
    });
    print(context.stdout, target.sha);
    print(context.stderr, `duet: ${color} ${outcome.kind === 'updated' ? `updated (install ${outcome.install})` : 'already prepared'} at ${target.ref}`);
  },
};
