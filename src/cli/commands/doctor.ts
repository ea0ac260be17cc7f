import { formatResult, runDoctor } from '../../setup/doctor.js';
import { UsageError } from '../../errors.js';
import { print, type Command } from '../command.js';

export const doctor: Command = {
  name: 'doctor',
  summary: 'check that this server is ready: config, nginx, ports, state dir, repos, GitHub token, secrets, disk, units',
  usage: [
    'doctor [--json] [--root DIR]',
    '  One line per check: ✓ name: detail, or ✗ name: detail — fix. Exit 0 only when all pass,',
    '  1 when one fails, 2 when the config is invalid. Run it as root (sudo duet doctor) to see',
    '  who holds a port, test nginx like the service does and reach git as the service user.',
    '  --json      print the checks as a JSON array of {name, ok, detail, fix}',
    '  --root DIR  look for the units and credentials `duet install --root DIR` wrote under DIR',
  ].join('\n'),
  options: { json: { type: 'boolean' }, root: { type: 'string' } },
  async run(context) {
    if (context.positionals.length > 0) throw new UsageError('doctor: takes no arguments', `usage: duet ${doctor.usage}`);
    const report = await runDoctor({ configPath: context.configPath, root: context.values.root as string | undefined });
    if (context.values.json) print(context.stdout, JSON.stringify(report.results, null, 2));
    else for (const result of report.results) print(context.stdout, formatResult(result));
    return report.exitCode;
  },
};
