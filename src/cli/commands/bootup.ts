import { bootup as runBootup } from '../../pipeline/bootup.js';
import { appsFrom, print, type Command } from '../command.js';
import { progressObserver } from '../progress.js';

export const bootup: Command = {
  name: 'bootup',
  summary: 'after a reboot: start the enabled color (and the standby), re-apply the proxy; all apps by default',
  usage: 'bootup [app]',
  async run(context) {
    const { config, apps } = await appsFrom(context);
    const observer = progressObserver(context.stderr);
    let failed = 0;
    try {
      for (const app of apps) {
        try {
          const result = await runBootup(config, app, observer);
          print(context.stdout, `${app.name}: ${result.enabled ? `${result.enabled} live, standby ${result.standby}` : 'nothing deployed yet'}`);
        } catch (error) {
          // One app failing to come back must not keep the others down.
          failed += 1;
          print(context.stderr, `duet: ${app.name}: ${(error as Error).message}`);
        }
      }
    } finally {
      observer.stop();
    }
    return failed ? 1 : 0;
  },
};
