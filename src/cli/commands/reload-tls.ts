import { reloadTls as reload } from '../../pipeline/reload-tls.js';
import { appFrom, lockWait, print, type Command } from '../command.js';

export const reloadTls: Command = {
  name: 'reload-tls',
  summary: "check the app's certificate and key, and make nginx serve them (certbot's deploy hook runs it)",
  usage: 'reload-tls [app] [--no-wait]',
  options: { 'no-wait': { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, reloadTls);
    const result = await reload(config, app, {
      ...lockWait(context),
      output: context.stderr,
    });
    const days = Math.floor((result.certificate.notAfter.getTime() - Date.now()) / 86_400_000);
    print(
      context.stdout,
      `${app.name}: ${result.action} (${result.certificate.names.join(', ')}; expires ${result.certificate.notAfter.toISOString()}, in ${days} days)`,
    );
  },
};
