import { deploy as runDeploy } from '../../pipeline/deploy.js';
import { appFrom, print, type Command } from '../command.js';
import { progressObserver } from '../progress.js';

export const restart: Command = {
  name: 'restart',
  summary: 'apply a changed env file or duet.yml: the live commit into the idle color, then health, switch, watch (the old color stays warm)',
  usage: 'restart [app] [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, restart);
    const observer = progressObserver(context.stderr);
    try {
      const result = await runDeploy(config, app, { restart: true, wait: !context.values['no-wait'], observer });
      print(context.stdout, `${app.name}: ${result.sha.slice(0, 7)} restarted on ${result.color} in ${(result.ms / 1000).toFixed(1)}s (deploy ${result.id})`);
    } finally {
      observer.stop();
    }
  },
};
