import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import { probe, type Target } from '../util/http-probe.js';
import type { OutputSink } from '../util/run.js';
import { isSocket, liveSocketColor, pointSockets, restoreSockets } from './live-socket.js';
import { ensureManagedNginx } from './managed-nginx.js';
import { markBeforeReload, stillAccepting } from './nginx-workers.js';
import { appConfPath, installConf, renderAppConf } from './nginx-conf.js';
import { askPublicPort, colorInConf, describeServing, headerValue, pollPublicPort, prepareServer, type VerifyOptions } from './proxy.js';
import { SocketOpener } from './socket-opener.js';
import { makeSocketReachable } from './socket-permissions.js';
import type { Switch, Switched } from './switch.js';

/** The answer came from standby.sock, nginx's fallback, not from live.sock. */
function viaStandby(headers: Record<string, string | string[] | undefined>): boolean {
  return headerValue(headers['x-duet-upstream']) === 'standby';
}

/**
 * `switch: socket`: each color listens on a unix socket, and nginx proxies to the symlink
 * live.sock (standby.sock its fallback); the switch is the rename of the symlink.
 */
export class SocketSwitch implements Switch {
  readonly switchDetail = 'symlink renamed';

  constructor(private readonly app: AppConfig) {}

  /** The conf on disk, else (never connected through nginx yet) the target of live.sock. */
  configuredColor(config: Config): Promise<Color | undefined> {
    return colorInConf(this.app, config, () => liveSocketColor(this.app));
  }

  /**
   * nginx proxies to symlinks and cannot know the color; X-Duet-Upstream says whether live.sock
   * or standby.sock answered, mapped back through live.sock's target. X-Duet-Color first: the
   * conf nginx runs may still be a port-mode one.
   */
  async servingColor(options: { timeoutMs?: number } = {}): Promise<Color | undefined> {
    const asked = await askPublicPort(this.app, options.timeoutMs);
    if (!asked) return undefined;
    if (asked.color) return asked.color;
    const live = await liveSocketColor(this.app);
    return live && viaStandby(asked.answer.headers) ? otherColor(live) : live;
  }

  /**
   * The rename of live.sock is the switch, and it comes first, a few ms after the new color was
   * found healthy. That is safe whatever nginx runs: a nginx that proxies through live.sock sends
   * new connections to the new color at once, and one that does not yet (a first connect, a
   * managed nginx that is down, a change from port mode) is not touched by the rename and is
   * brought to it next. Until then the truth stays what nginx's conf says (configuredColor).
   */
  async switchTo(config: Config, color: Color, options: { output?: OutputSink } = {}): Promise<Switched> {
    const app = this.app;
    prepareServer(app);
    // Checked before anything changes: a symlink to nothing would turn every request into a 502.
    if (!isSocket(app.paths.socket[color])) {
      throw new DuetError(`${app.name}: ${app.paths.socket[color]} does not exist; the ${color} instance is not listening`, {
        step: 'switch',
        hint: `start the ${color} instance first; nothing was changed and ${await describeServing(app, this.configuredColor(config))}`,
      });
    }
    // The app created its socket with its own umask; nginx's workers run as another user. The
    // other color's socket too, when it runs: it is nginx's fallback.
    this.openToNginx(color);
    const standby = app.paths.socket[otherColor(color)];
    if (app.fallback && isSocket(standby)) this.openToNginx(otherColor(color));
    const { before, settled } = pointSockets(app, color);
    options.output?.write(`switch: ${app.paths.liveSocket} -> ${color}.sock\n`);
    // nginx is brought to live.sock while standby.sock waits its turn; both are done before the switch is.
    const [conf, links] = await Promise.allSettled([this.bringNginx(config, options), settled]);
    if (conf.status === 'fulfilled' && links.status === 'fulfilled') return conf.value;
    // nginx was not brought to live.sock: it points where it did, so the state stays one story.
    await restoreSockets(app, before);
    throw conf.status === 'rejected' ? conf.reason : (links as PromiseRejectedResult).reason;
  }

  /** A managed nginx that is down is started; one whose main config an upgraded duet changed is reloaded; the app's conf installed when it changed. */
  private async bringNginx(config: Config, options: { output?: OutputSink }): Promise<Switched> {
    await ensureManagedNginx(config, options);
    const path = appConfPath(this.app, config);
    const content = await this.renderConf();
    // The file does not depend on the color: written and reloaded only when it changed (TLS
    // turned on, say), and then verify waits for the old workers, which serve the old file.
    if ((await readFileIfExists(path)) === content) return {};
    const mark = markBeforeReload(config);
    // Not describeServing: live.sock already names the new color, and is put back below.
    await installConf(path, content, config, { ...options, stillServing: `nginx still runs its previous config for ${this.app.name}` });
    return { reload: mark };
  }

  /** Polls for a 2xx on the health path through live.sock. */
  verify(color: Color, options: VerifyOptions = {}): Promise<string> {
    const app = this.app;
    const reload = options.reload;
    const check = async (probeMs: number, target: Target): Promise<true | string> => {
      const old = reload ? stillAccepting(reload) : [];
      if (old.length > 0) return `nginx workers from before the reload still accepting: ${old.join(', ')}`;
      const answer = await probe(target, app.health.path, probeMs);
      if (!answer) return 'no answer';
      // An answer through standby.sock means live.sock refused the connection: not verified.
      const fallback = viaStandby(answer.headers);
      if (!fallback && answer.status >= 200 && answer.status < 300) return true;
      return `HTTP ${answer.status}${fallback ? ' through standby.sock (live.sock refused the connection)' : ''}`;
    };
    return pollPublicPort(app, color, options, {
      check,
      what: `a 2xx answer on ${app.health.path}`,
      intervals: { maxIntervalMs: 50 },
      how: 'a 2xx through live.sock',
      hintFor: (last) =>
        last.startsWith('HTTP 502')
          ? `nginx cannot reach ${app.paths.socket[color]}: its workers (nobody/www-data) need write permission on the socket and o+x on its directories (makeSocketReachable); `
          : '',
    });
  }

  /** The conf does not depend on the color: the symlinks do. */
  renderConf(): Promise<string> {
    return renderAppConf(this.app, 'app-socket.conf.template', { live_socket: this.app.paths.liveSocket, standby_socket: this.app.paths.standbySocket });
  }

  /** The app created its socket with its own umask; nginx's workers run as another user. */
  openToNginx(color: Color): void {
    makeSocketReachable(this.app.paths.socket[color], this.app.paths.root);
  }

  socketOpener(onError: (socket: string, error: Error) => void): SocketOpener {
    return new SocketOpener(this.app, onError);
  }
}
