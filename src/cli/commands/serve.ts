import { readSecrets } from '../../config/secrets.js';
import { ConfigError } from '../../errors.js';
import { contextConfig, type Command } from '../command.js';

export const serve: Command = {
  name: 'serve',
  summary: 'receive GitHub webhooks and API calls, queue deploys, report commit statuses',
  usage: 'serve',
  async run(context) {
    const config = await contextConfig(context);
    const secrets = await readSecrets();
    const { webhookSecret } = secrets;
    if (!webhookSecret) {
      throw new ConfigError(
        'DUET_WEBHOOK_SECRET is not set: duet serve would accept deploys from anyone',
        'set DUET_WEBHOOK_SECRET (or DUET_WEBHOOK_SECRET_FILE) to the secret configured on GitHub',
      );
    }
    const { runServer } = await import('../serve-runtime.js');
    await runServer(config, { ...secrets, webhookSecret }, (context.stdout as { isTTY?: boolean }).isTTY === true);
  },
};
