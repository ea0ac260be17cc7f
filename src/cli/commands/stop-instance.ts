import { stopColor } from '../../pipeline/color-acts.js';
import { appAndColorFrom, lockWait, print, type Command } from '../command.js';

export const stopInstance: Command = {
  name: 'stop-instance',
  summary: 'stop a color: SIGTERM to its process group, SIGKILL after stop_timeout_s',
  usage: 'stop-instance [app] <color> [--force] [--no-wait]',
  options: { force: { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, stopInstance);
    const outcome = await stopColor(config, app, color, {
      force: context.values.force === true,
      ...lockWait(context),
    });
    print(context.stdout, outcome);
  },
};
