import { parseArgs, type ParseArgsConfig } from 'node:util';
import { findConfigFile, loadConfig, pickApp, type AppConfig, type Config } from '../config/load.js';
import { parseColor, type Color } from '../config/schema.js';
import { UsageError } from '../errors.js';
import type { LockOwner } from '../pipeline/lock.js';

/** One CLI command: one file in src/cli/commands, named for what it does. */
export interface Command {
  name: string;
  summary: string;
  /** Shown by `duet help <command>` and on usage errors. */
  usage: string;
  options?: ParseArgsConfig['options'];
  run(context: CommandContext): Promise<number | void>;
}

export interface CommandContext {
  configPath: string | undefined;
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export function parseCommandArgs(command: Command, args: string[]): Pick<CommandContext, 'positionals' | 'values'> {
  try {
    const { positionals, values } = parseArgs({ args, options: command.options ?? {}, allowPositionals: true, strict: true });
    return { positionals, values: values as Record<string, string | boolean | undefined> };
  } catch (error) {
    throw new UsageError(`${command.name}: ${(error as Error).message}`, `usage: duet ${command.usage}`);
  }
}

export async function contextConfig(context: CommandContext): Promise<Config> {
  return loadConfig(findConfigFile(context.configPath));
}

/** `[app]` as the only positional. */
export async function appFrom(context: CommandContext, command: Command): Promise<{ config: Config; app: AppConfig }> {
  if (context.positionals.length > 1) throw new UsageError(`${command.name}: too many arguments`, `usage: duet ${command.usage}`);
  const config = await contextConfig(context);
  return { config, app: pickApp(config, context.positionals[0]) };
}

/** `[app]` for commands that act on every app when none is named (bootup, down). */
export async function appsFrom(context: CommandContext): Promise<{ config: Config; apps: AppConfig[]; all: boolean }> {
  const config = await contextConfig(context);
  const all = context.positionals.length === 0;
  return { config, apps: all ? [...config.apps.values()] : [pickApp(config, context.positionals[0])], all };
}

/** `[app] <color>`: the app may be left out when the config has only one. */
export async function appAndColorFrom(context: CommandContext, command: Command): Promise<{ config: Config; app: AppConfig; color: Color }> {
  const args = context.positionals;
  if (args.length < 1 || args.length > 2) throw new UsageError(`${command.name}: expected [app] <color>`, `usage: duet ${command.usage}`);
  const color = parseColor(args.at(-1));
  if (!color) throw new UsageError(`${command.name}: "${args.at(-1)}" is not a color`, 'a color is blue or green');
  const config = await contextConfig(context);
  return { config, app: pickApp(config, args.length === 2 ? args[0] : undefined), color };
}

/** `--no-wait`, and a line on stderr while another duet holds the app's lock. */
export function lockWait(context: CommandContext): { wait: boolean; onWait: (holder: LockOwner) => void } {
  return { wait: !context.values['no-wait'], onWait: (holder) => print(context.stderr, `duet: waiting for pid ${holder.pid} (${holder.command})`) };
}

export function print(stream: NodeJS.WritableStream, line: string): void {
  stream.write(`${line}\n`);
}
