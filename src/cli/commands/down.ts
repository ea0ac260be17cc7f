import { stopInstance } from '../../instance/runner.js';
import { acquireLock } from '../../pipeline/lock.js';
import { stopManagedNginx } from '../../switch/managed-nginx.js';
import { contextConfig, print, type Command } from '../command.js';
import { pickApp } from '../../config/load.js';

export const down: Command = {
  name: 'down',
  summary: 'stop both colors of every app (or one), and the managed nginx; files stay for bootup',
  usage: 'down [app]',
  async run(context) {
    const config = await contextConfig(context);
    const apps = context.positionals.length ? [pickApp(config, context.positionals[0])] : [...config.apps.values()];
    for (const app of apps) {
      const lock = await acquireLock(app, { command: 'down', wait: true });
      try {
        for (const color of ['blue', 'green'] as const) print(context.stdout, `${app.name} ${color}: ${await stopInstance(app, color)}`);
      } finally {
        await lock.release();
      }
    }
    if (config.nginx.managed && !context.positionals.length) {
      await stopManagedNginx(config);
      print(context.stdout, 'nginx: stopped');
    }
  },
};
