import { basename, isAbsolute } from 'node:path';
import { ConfigError } from '../errors.js';
import { findProgram, needsSudo, type InstallLayout } from './layout.js';
import type { SetupConfig } from './settings.js';

/** sudo options duet.yml may use: only "never ask for a password". Anything else (-u, -E) is refused. */
const ALLOWED_SUDO_OPTIONS = new Set(['-n', '--non-interactive']);

/**
 * The command behind `sudo` in a configured argv, or undefined when it does not go through sudo.
 * sudoers matches the program by absolute path and the arguments exactly, so both are checked.
 */
function commandBehindSudo(argv: readonly string[], key: string): string[] | undefined {
  if (basename(argv[0] ?? '') !== 'sudo') return undefined;
  let i = 1;
  while (i < argv.length && argv[i]!.startsWith('-')) {
    const option = argv[i]!;
    i += 1;
    if (option === '--') break;
    if (!ALLOWED_SUDO_OPTIONS.has(option)) {
      throw new ConfigError(`${key}: the sudo option ${option} is not supported`, `use [sudo, -n, /absolute/program, args...]`);
    }
  }
  const command = argv.slice(i);
  if (command.length === 0 || !isAbsolute(command[0]!)) {
    throw new ConfigError(`${key}: sudo needs the program's absolute path (sudoers matches on it)`, `e.g. [sudo, -n, /usr/sbin/nginx, -t]`);
  }
  if (/[\s\\,:=*?[\]]/.test(command[0]!)) throw new ConfigError(`${key}: sudoers cannot name the program ${JSON.stringify(command[0])}`);
  for (const arg of command) {
    if (arg === '' || /\s/.test(arg)) throw new ConfigError(`${key}: sudoers cannot express the argument ${JSON.stringify(arg)}`);
  }
  return command;
}

/**
 * One command as a sudoers Cmnd, matching exactly this argv. Two layers of quoting, checked
 * against Debian 12's sudo (test/setup/real-install.test.ts): sudoers' parser takes \ , : = as
 * syntax, and an argument that still holds \ * ? [ ] after parsing is matched with fnmatch(3),
 * where * would match anything -- so those are escaped for fnmatch first, then all of it for
 * the parser (a literal backslash becomes four). A program without arguments gets "", which
 * sudoers reads as "no arguments" (a bare path would allow any).
 */
function sudoersCommand(argv: readonly string[]): string {
  const [program, ...args] = argv;
  if (args.length === 0) return `${program} ""`;
  const quoted = args.map((arg) => arg.replace(/[\\*?[\]]/g, '\\$&').replace(/[\\,:=]/g, '\\$&'));
  return [program, ...quoted].join(' ');
}

/**
 * The commands the service user may run as root: exactly nginx.test_cmd and nginx.reload_cmd,
 * or undefined when nothing needs root and no drop-in should exist. (`runner: systemd` needs
 * none: the app units run in the service user's own systemd.)
 */
export function sudoersCommands(setup: SetupConfig): string[][] | undefined {
  if (!needsSudo(setup)) return undefined;
  const { testCmd, reloadCmd } = setup.config.nginx;
  const test = commandBehindSudo(testCmd, 'nginx.test_cmd');
  const reload = commandBehindSudo(reloadCmd, 'nginx.reload_cmd');
  if (!test || !reload) {
    throw new ConfigError(
      `nginx.test_cmd and nginx.reload_cmd run as user ${setup.user}, who cannot test or reload the system nginx`,
      `prefix them with sudo: test_cmd: [sudo, -n, ${findProgram('nginx', '/usr/sbin/nginx')}, -t]; ` + `or use switch: socket, which needs no reload`,
    );
  }
  return [test, reload];
}

export function renderSudoers(setup: SetupConfig, layout: InstallLayout, commands: string[][]): string {
  return [
    `# Written by \`duet install\`: lets the user ${setup.user} run exactly these commands as root and`,
    `# nothing else: nginx.test_cmd and nginx.reload_cmd of ${layout.configFile}.`,
    '# Every install rewrites it; change duet.yml and run `duet install` instead of editing it.',
    `${setup.user} ALL=(root) NOPASSWD: ${commands.map(sudoersCommand).join(', \\\n    ')}`,
    '',
  ].join('\n');
}
