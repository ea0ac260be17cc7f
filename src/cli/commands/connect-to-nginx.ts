import { DuetError } from '../../errors.js';
import { checkHealth } from '../../instance/health.js';
import { acquireLock } from '../../pipeline/lock.js';
import { switchProxy, verifyProxy } from '../../switch/proxy.js';
import { appAndColorFrom, print, type Command } from '../command.js';

export const connectToNginx: Command = {
  name: 'connect-to-nginx',
  summary: 'point nginx at a color (refuses an unhealthy one unless --force)',
  usage: 'connect-to-nginx [app] <color> [--force]',
  options: { force: { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, connectToNginx);
    const lock = await acquireLock(app, { command: `connect-to-nginx ${color}`, wait: true });
    try {
      const health = await checkHealth(app, color);
      if (health.state !== 'healthy' && !context.values.force) {
        throw new DuetError(`${color} is not healthy (GET ${app.health.path}: ${health.detail}); nginx was left as it was`, {
          step: 'switch',
          hint: `start it (duet start-instance ${color}) or pass --force`,
        });
      }
      const switched = await switchProxy(app, config, color, { output: context.stderr });
      if (health.state === 'healthy') await verifyProxy(app, color, { reload: switched.reload });
      print(context.stdout, color);
    } finally {
      await lock.release();
    }
  },
};
