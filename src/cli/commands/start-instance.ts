import { DuetError } from '../../errors.js';
import { waitUntilHealthy } from '../../instance/health.js';
import { startInstance as start, stillRunning } from '../../instance/runner.js';
import { preparedRelease } from '../../instance/update.js';
import { appAndColorFrom, print, type Command } from '../command.js';

export const startInstance: Command = {
  name: 'start-instance',
  summary: 'start a color from its prepared checkout and wait until it is healthy',
  usage: 'start-instance [app] <color>',
  async run(context) {
    const { app, color } = await appAndColorFrom(context, startInstance);
    const prepared = await preparedRelease(app, color);
    if (!prepared) {
      throw new DuetError(`${color} has no completely prepared checkout to start`, {
        step: 'start',
        hint: `prepare it first: duet update-instance ${color} --ref <ref>`,
      });
    }
    const record = await start(app, color, prepared);
    await waitUntilHealthy(app, color, { isAlive: stillRunning(record) });
    print(context.stdout, String(record.pid));
  },
};
