import { runnerOf } from '../../instance/runner.js';
import { acquireLock } from '../../pipeline/lock.js';
import { stopManagedNginx } from '../../switch/managed-nginx.js';
import { appsFrom, print, type Command } from '../command.js';

export const down: Command = {
  name: 'down',
  summary: 'stop both colors of every app (or one), and the managed nginx; files stay for bootup',
  usage: 'down [app]',
  async run(context) {
    const { config, apps, all } = await appsFrom(context);
    for (const app of apps) {
      const lock = await acquireLock(app, { command: 'down', wait: true });
      try {
        for (const color of ['blue', 'green'] as const) print(context.stdout, `${app.name} ${color}: ${await runnerOf(app).stop(color)}`);
      } finally {
        await lock.release();
      }
    }
    if (config.nginx.managed && all) {
      await stopManagedNginx(config);
      print(context.stdout, 'nginx: stopped');
    }
  },
};
