import { startColor } from '../../pipeline/color-acts.js';
import { appAndColorFrom, print, type Command } from '../command.js';

export const startInstance: Command = {
  name: 'start-instance',
  summary: 'start a color from its prepared checkout and wait until it is healthy',
  usage: 'start-instance [app] <color> [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, startInstance);
    const record = await startColor(config, app, color, {
      wait: !context.values['no-wait'],
      onWait: (holder) => print(context.stderr, `duet: waiting for pid ${holder.pid} (${holder.command})`),
    });
    print(context.stdout, String(record.pid));
  },
};
