#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { exitCodeOf } from '../error-kinds.js';
import { describeError, DuetError, UsageError } from '../errors.js';
import { parseCommandArgs, type Command } from './command.js';

/**
 * Every command, in the order `duet help` lists them. A command's module (and the libraries it
 * pulls in: execa, simple-git, express, Octokit) is imported only when that command runs, so a
 * `duet rollback` does not pay for loading what `duet serve` needs.
 */
const registry: ReadonlyArray<readonly [name: string, load: () => Promise<Command>]> = [
  ['enabled-instance', async () => (await import('./commands/identify.js')).enabledInstance],
  ['disabled-instance', async () => (await import('./commands/identify.js')).disabledInstance],
  ['enabled-port', async () => (await import('./commands/identify.js')).enabledPort],
  ['disabled-port', async () => (await import('./commands/identify.js')).disabledPort],
  ['pid', async () => (await import('./commands/identify.js')).pid],
  ['start-instance', async () => (await import('./commands/start-instance.js')).startInstance],
  ['stop-instance', async () => (await import('./commands/stop-instance.js')).stopInstance],
  ['update-instance', async () => (await import('./commands/update-instance.js')).updateInstance],
  ['connect-to-nginx', async () => (await import('./commands/connect-to-nginx.js')).connectToNginx],
  ['reload-tls', async () => (await import('./commands/reload-tls.js')).reloadTls],
  ['deploy', async () => (await import('./commands/deploy.js')).deploy],
  ['rollback', async () => (await import('./commands/rollback.js')).rollback],
  ['releases', async () => (await import('./commands/releases.js')).releases],
  ['restart', async () => (await import('./commands/restart.js')).restart],
  ['status', async () => (await import('./commands/status.js')).status],
  ['bootup', async () => (await import('./commands/bootup.js')).bootup],
  ['history', async () => (await import('./commands/history.js')).history],
  ['logs', async () => (await import('./commands/logs.js')).logs],
  ['down', async () => (await import('./commands/down.js')).down],
  ['serve', async () => (await import('./commands/serve.js')).serve],
  ['install', async () => (await import('./commands/install.js')).install],
  ['doctor', async () => (await import('./commands/doctor.js')).doctor],
  ['step-runner', async () => (await import('./commands/step-runner.js')).stepRunner],
];

/** The command named `name`, loaded; undefined for a name duet does not know. */
async function loadCommand(name: string): Promise<Command | undefined> {
  const entry = registry.find(([known]) => known === name);
  return entry && (await entry[1]());
}

async function usage(): Promise<string> {
  const commands = await Promise.all(registry.map(([, load]) => load()));
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

async function main(argv: string[]): Promise<number> {
  try {
    const { configPath, rest } = splitGlobal(argv);
    const [name, ...args] = rest;
    if (name === undefined || name === 'help') {
      const about = args[0] === undefined ? undefined : await loadCommand(args[0]);
      process.stdout.write(`${about ? `usage: duet ${about.usage}\n\n${about.summary}` : await usage()}\n`);
      return name === undefined ? 2 : 0;
    }
    const command = await loadCommand(name);
    if (!command) throw new UsageError(`unknown command "${name}"`, 'run `duet help` for the list');
    const parsed = parseCommandArgs(command, args);
    const code = await command.run({ configPath, ...parsed, stdout: process.stdout, stderr: process.stderr });
    return code ?? 0;
  } catch (error) {
    const prefix = error instanceof DuetError && error.step ? `${error.step}: ` : '';
    process.stderr.write(`duet: ${prefix}${describeError(error)}\n`);
    return exitCodeOf(error);
  }
}

// Run when executed directly (also through the npm bin symlink), not when imported by tests.
const invoked = process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
}
