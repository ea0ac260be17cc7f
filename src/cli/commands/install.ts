import { install as runInstall } from '../../setup/install.js';
import { UsageError } from '../../errors.js';
import { print, type Command } from '../command.js';

export const install: Command = {
  name: 'install',
  summary: 'set duet up on this server: system user, directories, systemd units, nginx site, sudoers (idempotent)',
  // The option notes live in the usage text because `duet help install` prints it.
  usage: [
    'install [--dry-run] [--root DIR]',
    '  Reads --config FILE (default /etc/duet/duet.yml, never ./duet.yml); writes a starter config when there is none.',
    '  --dry-run   print every file it would write or change (with a diff) and every command it would run',
    '  --root DIR  write the files into DIR instead of /; useradd, chown, systemctl and nginx -t/reload are',
    '              then listed but not run, and file ownership is not changed: nothing outside DIR is touched',
  ].join('\n'),
  options: { 'dry-run': { type: 'boolean' }, root: { type: 'string' } },
  async run(context) {
    if (context.positionals.length > 0) throw new UsageError('install: takes no arguments', `usage: duet ${install.usage}`);
    // Not findConfigFile: a ./duet.yml in the current directory must not end up in a unit file.
    await runInstall({
      configFile: context.configPath,
      root: context.values.root as string | undefined,
      dryRun: context.values['dry-run'] === true,
      log: (line) => print(context.stdout, line),
    });
    return 0;
  },
};
