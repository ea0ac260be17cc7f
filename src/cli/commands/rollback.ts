import { rollback as runRollback } from '../../pipeline/rollback.js';
import { appFrom, print, type Command } from '../command.js';
import { progressObserver } from '../progress.js';

export const rollback: Command = {
  name: 'rollback',
  summary: 'switch back to the other color, which holds the previous release (no rebuild)',
  usage: 'rollback [app] [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, rollback);
    const observer = progressObserver(context.stderr);
    try {
      const result = await runRollback(config, app, { wait: !context.values['no-wait'], observer });
      print(context.stdout, `${app.name}: rolled back to ${result.sha.slice(0, 7)} on ${result.color} in ${(result.ms / 1000).toFixed(2)}s`);
    } finally {
      observer.stop();
    }
  },
};
