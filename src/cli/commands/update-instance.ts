import { DuetError, UsageError } from '../../errors.js';
import { resolveRef } from '../../instance/checkout.js';
import { updateInstance as update } from '../../instance/update.js';
import { acquireLock } from '../../pipeline/lock.js';
import { configuredColor } from '../../switch/proxy.js';
import { appAndColorFrom, print, type Command } from '../command.js';

export const updateInstance: Command = {
  name: 'update-instance',
  summary: 'stop a color, check out REF into its directory, install, build',
  usage: 'update-instance [app] <color> --ref REF [--force]',
  options: { ref: { type: 'string' }, force: { type: 'boolean' } },
  async run(context) {
    const { config, app, color } = await appAndColorFrom(context, updateInstance);
    const ref = context.values.ref;
    if (typeof ref !== 'string') throw new UsageError('update-instance needs --ref REF', `usage: duet ${updateInstance.usage}`);
    const lock = await acquireLock(app, {
      command: `update-instance ${color} ${ref}`,
      wait: true,
      onWait: (h) => print(context.stderr, `duet: waiting for pid ${h.pid} (${h.command})`),
    });
    try {
      if (!context.values.force && (await configuredColor(app, config)) === color) {
        throw new DuetError(`${color} is the color nginx serves: updating it stops ${app.name}`, {
          step: 'update',
          hint: 'update the idle color (duet disabled-instance), or pass --force',
        });
      }
      const target = await resolveRef(app.clone_url, ref);
      const outcome = await update(app, color, target, context.stderr);
      print(context.stdout, target.sha);
      print(context.stderr, `duet: ${color} ${outcome.kind === 'updated' ? `updated (install ${outcome.install})` : 'already prepared'} at ${target.ref}`);
    } finally {
      await lock.release();
    }
  },
};
