#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describeError, DuetError, UsageError } from '../errors.js';
import { parseCommandArgs, type Command, type CommandContext } from './command.js';
import { bootup } from './commands/bootup.js';
import { connectToNginx } from './commands/connect-to-nginx.js';
import { deploy } from './commands/deploy.js';
import { doctor } from './commands/doctor.js';
import { down } from './commands/down.js';
import { history } from './commands/history.js';
import { install } from './commands/install.js';
import { disabledInstance, disabledPort, enabledInstance, enabledPort, pid } from './commands/identify.js';
import { logs } from './commands/logs.js';
import { rollback } from './commands/rollback.js';
import { serve } from './commands/serve.js';
import { startInstance } from './commands/start-instance.js';
import { status } from './commands/status.js';
import { stopInstance } from './commands/stop-instance.js';
import { updateInstance } from './commands/update-instance.js';

export const commands: readonly Command[] = [
  enabledInstance,
  disabledInstance,
  enabledPort,
  disabledPort,
  pid,
  startInstance,
  stopInstance,
  updateInstance,
  connectToNginx,
  deploy,
  rollback,
  status,
  bootup,
  history,
  logs,
  down,
  serve,
  install,
  doctor,
];

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'usage: duet [--config FILE] <command> [app] [args]',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'The config is --config FILE, else $DUET_CONFIG, else ./duet.yml, else /etc/duet/duet.yml.',
    'Exit codes: 0 success, 1 operation failed, 2 usage or config error.',
  ].join('\n');
}

/** Global options come before the command: `duet --config x.yml status`. */
function splitGlobal(argv: string[]): { configPath: string | undefined; rest: string[] } {
  let configPath: string | undefined;
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-')) {
    const arg = argv[i]!;
    if (arg === '--config' || arg === '-c') {
      configPath = argv[i + 1];
      if (configPath === undefined) throw new UsageError('--config needs a file');
      i += 2;
    } else if (arg.startsWith('--config=')) {
      configPath = arg.slice('--config='.length);
      i += 1;
    } else if (arg === '--help' || arg === '-h') {
      return { configPath, rest: ['help'] };
    } else {
      throw new UsageError(`unknown option ${arg}`, 'options other than --config go after the command');
    }
  }
  return { configPath, rest: argv.slice(i) };
}

export async function main(argv: string[], io: Pick<CommandContext, 'stdout' | 'stderr'> = process): Promise<number> {
  try {
    const { configPath, rest } = splitGlobal(argv);
    const [name, ...args] = rest;
    if (name === undefined || name === 'help') {
      const about = args[0] && commands.find((c) => c.name === args[0]);
      io.stdout.write(`${about ? `usage: duet ${about.usage}\n\n${about.summary}` : usage()}\n`);
      return name === undefined ? 2 : 0;
    }
    const command = commands.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command "${name}"`, 'run `duet help` for the list');
    const parsed = parseCommandArgs(command, args);
    const code = await command.run({ configPath, ...parsed, ...io });
    return code ?? 0;
  } catch (error) {
    const prefix = error instanceof DuetError && !(error instanceof UsageError) ? `${error.step}: ` : '';
    io.stderr.write(`duet: ${prefix}${describeError(error)}\n`);
    return error instanceof DuetError ? error.exitCode : 1;
  }
}

// Run when executed directly (also through the npm bin symlink), not when imported by tests.
const invoked = process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
}
