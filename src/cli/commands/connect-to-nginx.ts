import { connectColor } from '../../pipeline/color-acts.js';
import { appAndColorFrom, lockWait, print, type Command } from '../command.js';

export const connectToNginx: Command = {
  name: 'connect-to-nginx',
  summary: 'point nginx at a color (refuses an unhealthy one unless --force)',
  usage: 'connect-to-nginx [app] <color> [--force] [--no-wait]',
  options: { force: { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, connectToNginx);
    await connectColor(config, app, color, {
      force: context.values.force === true,
      ...lockWait(context),
      output: context.stderr,
    });
    print(context.stdout, color);
  },
};
