import { createReadStream } from 'node:fs';
import { pickApp } from '../../config/load.js';
import { DuetError, UsageError } from '../../errors.js';
import { deployLogPath } from '../../pipeline/deploy-log.js';
import { appJournal } from '../../pipeline/app-journal.js';
import { isDeployId } from '../../pipeline/journal.js';
import { contextConfig, type Command } from '../command.js';

export const logs: Command = {
  name: 'logs',
  summary: "print a deploy's full log (default: the latest deploy)",
  usage: 'logs [app] [DEPLOY_ID]',
  async run(context) {
    const args = [...context.positionals];
    // A deploy id has a fixed shape, so it can be told from an app name.
    const id = args.length && isDeployId(args.at(-1)!) ? args.pop() : undefined;
    if (args.length > 1) throw new UsageError('logs: too many arguments', `usage: duet ${logs.usage}`);
    if (args.length === 1 && !/^[a-z0-9-]+$/.test(args[0]!)) throw new UsageError(`logs: "${args[0]}" is neither an app nor a deploy id`);
    const config = await contextConfig(context);
    const app = pickApp(config, args[0]);
    const journal = appJournal(config, app.name);
    const record = id ? await journal.deploy(id) : (await journal.all()).findLast((d) => d.pid !== null);
    if (!record) throw new DuetError(id ? `no deploy ${id} for ${app.name}` : `${app.name} has no deploys yet`, { step: 'logs', hint: 'see duet history' });
    await new Promise<void>((resolve, reject) => {
      const stream = createReadStream(deployLogPath(app, record.id));
      stream.on('error', reject);
      stream.on('end', resolve);
      stream.pipe(context.stdout, { end: false });
    });
  },
};
