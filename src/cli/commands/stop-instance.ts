import { stopColor } from '../../pipeline/color-acts.js';
import { appAndColorFrom, print, type Command } from '../command.js';

export const stopInstance: Command = {
  name: 'stop-instance',
  summary: 'stop a color: SIGTERM to its process group, SIGKILL after stop_timeout_s',
  usage: 'stop-instance [app] <color> [--force] [--no-wait]',
  options: { force: { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, stopInstance);
    const outcome = await stopColor(config, app, color, {
      force: context.values.force === true,
      wait: !context.values['no-wait'],
      onWait: (holder) => print(context.stderr, `duet: waiting for pid ${holder.pid} (${holder.command})`),
    });
    print(context.stdout, outcome);
  },
};
