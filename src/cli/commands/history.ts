import { appJournal } from '../../pipeline/app-journal.js';
import { appFrom, contextConfig, print, type Command } from '../command.js';

export const history: Command = {
  name: 'history',
  summary: 'past deploys, rollbacks, bootups and failovers and their outcomes, newest first',
  usage: 'history [app] [--json] [--limit N]',
  options: { json: { type: 'boolean' }, limit: { type: 'string' } },
  async run(context) {
    const { app } = await appFrom(context, history);
    const limit = Number(context.values.limit ?? 20);
    // What ran: a trigger that never did (superseded, still queued) has no outcome to show.
    const ran = (await appJournal(await contextConfig(context), app.name).all()).filter((d) => d.pid !== null);
    const records = ran.reverse().slice(0, Number.isFinite(limit) ? limit : 20);
    if (context.values.json) {
      print(context.stdout, JSON.stringify(records));
      return;
    }
    for (const r of records) {
      const took = r.totalMs === null ? '' : `${(r.totalMs / 1000).toFixed(1)}s`;
      const what = `${r.kind} ${r.ref ?? r.resolvedRef ?? ''}`.trim();
      const where = r.color ? `${r.from ?? '-'} -> ${r.color}` : '';
      print(
        context.stdout,
        [
          r.id,
          (r.outcome ?? 'running').padEnd(11),
          what.padEnd(20),
          (r.resolvedSha ?? '').slice(0, 7).padEnd(7),
          where.padEnd(14),
          took.padStart(6),
          r.error ? ` ${r.failedStep ? `${r.failedStep}: ` : ''}${r.error.split('\n')[0]}` : r.reason ? ` ${r.reason}` : '',
        ]
          .join('  ')
          .trimEnd(),
      );
    }
  },
};
