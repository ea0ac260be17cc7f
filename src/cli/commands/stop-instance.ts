import { DuetError } from '../../errors.js';
import { stopInstance as stop } from '../../instance/runner.js';
import { configuredColor } from '../../switch/proxy.js';
import { appAndColorFrom, print, type Command } from '../command.js';

export const stopInstance: Command = {
  name: 'stop-instance',
  summary: 'stop a color: SIGTERM to its process group, SIGKILL after stop_timeout_s',
  usage: 'stop-instance [app] <color> [--force]',
  options: { force: { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, stopInstance);
    if (!context.values.force && (await configuredColor(app, config)) === color) {
      throw new DuetError(`${color} is the color nginx serves: stopping it takes ${app.name} down`, {
        step: 'stop',
        hint: 'switch to the other color first, or pass --force if that is what you want',
      });
    }
    print(context.stdout, await stop(app, color));
  },
};
