import { loadConfig, parseConfig, type Config } from '../config/load.js';

/** What install and doctor work from: the resolved config and the two setup keys, named. */
export interface SetupConfig {
  config: Config;
  user: string;
  runner: 'process' | 'systemd';
  /** The apps' own user (runner: systemd), or undefined: they run as `user`. */
  appUser: string | undefined;
}

export async function loadSetupConfig(file: string): Promise<SetupConfig> {
  return withSettings(await loadConfig(file));
}

export function parseSetupConfig(text: string, file: string): SetupConfig {
  return withSettings(parseConfig(text, file));
}

function withSettings(config: Config): SetupConfig {
  return { config, user: config.user, runner: config.runner, appUser: config.appUser };
}
