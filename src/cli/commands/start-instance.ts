import { startColor } from '../../pipeline/color-acts.js';
import { appAndColorFrom, lockWait, print, type Command } from '../command.js';

export const startInstance: Command = {
  name: 'start-instance',
  summary: 'start a color from its prepared checkout and wait until it is healthy',
  usage: 'start-instance [app] <color> [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, startInstance);
    const record = await startColor(config, app, color, {
      ...lockWait(context),
    });
    print(context.stdout, String(record.pid));
  },
};
