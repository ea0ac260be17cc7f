import { otherColor, type Color } from '../../config/schema.js';
import type { AppConfig, Config } from '../../config/load.js';
import { endpointText } from '../../instance/endpoint.js';
import { appPid, runnerOf } from '../../instance/runner.js';
import { switchOf } from '../../switch/switch.js';
import { appAndColorFrom, appFrom, print, type Command, type CommandContext } from '../command.js';

/**
 * The identify commands print one bare value, for shell scripts: `$(duet disabled-port)`.
 * No answer (nothing was ever connected, the color is not running) is exit 1 with nothing on stdout.
 */

type Pick = (app: AppConfig, config: Config) => Promise<string | undefined>;

function identifyCommand(name: string, summary: string, pick: Pick): Command {
  const command: Command = {
    name,
    summary,
    usage: `${name} [app]`,
    async run(context: CommandContext) {
      const { config, app } = await appFrom(context, command);
      const value = await pick(app, config);
      if (value === undefined) {
        print(context.stderr, `duet: ${app.name}: no color is connected to nginx yet`);
        return 1;
      }
      print(context.stdout, value);
      return 0;
    },
  };
  return command;
}

const enabled = (app: AppConfig, config: Config): Promise<Color | undefined> => switchOf(app).configuredColor(config);
const disabled = async (app: AppConfig, config: Config): Promise<Color | undefined> => {
  const live = await enabled(app, config);
  return live && otherColor(live);
};
const portOf = (pickColor: typeof enabled) => async (app: AppConfig, config: Config) => {
  const color = await pickColor(app, config);
  return color && endpointText(app.endpoints[color]);
};

export const enabledInstance = identifyCommand('enabled-instance', 'the color nginx sends traffic to', enabled);
export const disabledInstance = identifyCommand('disabled-instance', 'the idle color', disabled);
export const enabledPort = identifyCommand('enabled-port', 'the port (or socket) of the enabled color', portOf(enabled));
export const disabledPort = identifyCommand('disabled-port', 'the port (or socket) of the idle color', portOf(disabled));

export const pid: Command = {
  name: 'pid',
  summary: "the pid of a running color's app process, the one that listens (exit 1 if it is not running)",
  usage: 'pid [app] <color>',
  async run(context) {
    const { app, color } = await appAndColorFrom(context, pid);
    const running = await runnerOf(app).running(color);
    if (!running) {
      print(context.stderr, `duet: ${app.name}: ${color} is not running`);
      return 1;
    }
    print(context.stdout, String(appPid(app, color, running)));
    return 0;
  },
};
