import { stopBothColors } from '../../pipeline/color-acts.js';
import { stopManagedNginx } from '../../switch/managed-nginx.js';
import { appsFrom, print, type Command } from '../command.js';

export const down: Command = {
  name: 'down',
  summary: 'stop both colors of every app (or one), and the managed nginx; files stay for bootup',
  usage: 'down [app]',
  async run(context) {
    const { config, apps, all } = await appsFrom(context);
    for (const app of apps) {
      const stopped = await stopBothColors(config, app, { wait: true });
      for (const color of ['blue', 'green'] as const) print(context.stdout, `${app.name} ${color}: ${stopped[color]}`);
    }
    if (config.nginx.managed && all) {
      await stopManagedNginx(config);
      print(context.stdout, 'nginx: stopped');
    }
  },
};
