import type { AppConfig, Config } from '../config/load.js';
import { otherColor, type Color } from '../config/schema.js';
import type { OutputSink } from '../util/run.js';
import { ensureManagedNginx } from './managed-nginx.js';
import { appConfPath, installConf, reloadConf, renderAppConf } from './nginx-conf.js';
import { markBeforeReload, stillAccepting } from './nginx-workers.js';
import { askPublicPort, colorInConf, describeServing, pollPublicPort, prepareServer, type VerifyOptions } from './proxy.js';
import { keepAppRootPrivate } from './socket-permissions.js';
import type { Switch, Switched } from './switch.js';

/**
 * How long the new color must answer every probe before a port-mode switch counts as done when
 * the reload's old workers cannot be watched (nginx-workers.ts; a system nginx whose pid file is
 * not at nginx.pid_file, or a reload by an earlier run). For a moment after a reload a fresh
 * connection may still reach an old worker: the window is longer than the benchmark's "healthy ->
 * only the new version" minus "healthy -> public" (bench/README.md, section 2). An old answer
 * inside the window starts it again, so a slow machine makes verify wait longer, never pass early.
 */
const SETTLE_MS = 150;

/**
 * `switch: port`: nginx proxies to the live color's loopback port (its standby's as the
 * fallback), written into duet-<app>.conf; the switch is a rewrite of that file and a reload.
 */
export class PortSwitch implements Switch {
  readonly switchDetail = 'nginx reloaded';

  constructor(private readonly app: AppConfig) {}

  configuredColor(config: Config): Promise<Color | undefined> {
    return colorInConf(this.app, config, async () => undefined);
  }

  /**
   * The X-Duet-Color header nginx adds: the color whose address nginx tried last, so the
   * fallback when the live color refused, and on a 502 the last one nginx tried.
   */
  async servingColor(options: { timeoutMs?: number } = {}): Promise<Color | undefined> {
    return (await askPublicPort(this.app, options.timeoutMs))?.color;
  }

  async switchTo(config: Config, color: Color, options: { output?: OutputSink } = {}): Promise<Switched> {
    const app = this.app;
    // Refused before anything changes: nginx keeps serving what it served.
    prepareServer(app);
    await ensureManagedNginx(config, options);
    // Nobody but duet's user needs the app root in port mode (socket mode opens the way to the sockets).
    keepAppRootPrivate(app.paths.root);
    const before = await describeServing(app, this.configuredColor(config));
    const path = appConfPath(app, config);
    const mark = markBeforeReload(config);
    const changed = await installConf(path, await this.renderConf(color), config, { ...options, stillServing: before });
    if (!changed) {
      // The file names the color; whether nginx runs it is asked, not assumed.
      if ((await this.servingColor()) === color) return {};
      await reloadConf(path, config, { ...options, stillServing: 'nginx still runs its previous config' });
    }
    options.output?.write(`switch: nginx reloaded with ${app.name} -> ${color} (port ${app.ports[color]})\n`);
    return { reload: mark };
  }

  /**
   * Polls for X-Duet-Color and waits until the reload's old workers stopped accepting (or, when
   * they cannot be watched, for SETTLE_MS of answers from `color`).
   */
  verify(color: Color, options: VerifyOptions = {}): Promise<string> {
    const reload = options.reload;
    let since: number | undefined;
    const check = async (probeMs: number): Promise<true | string> => {
      if (reload) {
        // Cheap /proc reads first; the answer through the public port is asked once they are done.
        const old = stillAccepting(reload);
        if (old.length > 0) return `nginx workers from before the reload still accepting: ${old.join(', ')}`;
      }
      const serving = await this.servingColor({ timeoutMs: probeMs });
      const seen = serving ? `X-Duet-Color: ${serving}` : 'no answer with X-Duet-Color';
      if (serving !== color) {
        since = undefined;
        return seen;
      }
      if (reload) return true;
      since ??= Date.now();
      return Date.now() - since >= SETTLE_MS ? true : seen;
    };
    return pollPublicPort(this.app, color, options, {
      check,
      what: `X-Duet-Color: ${color}`,
      // Probes at most 50 ms apart, so the settle window is actually observed, not slept through;
      // old workers are looked at every few ms, since verify ends the moment they are done.
      intervals: reload ? { initialIntervalMs: 5, maxIntervalMs: 5 } : { maxIntervalMs: 50 },
      // How it knows: the reload's old workers watched, or answers over a time.
      how: reload
        ? `X-Duet-Color: ${color}, and nginx's workers from before the reload stopped accepting`
        : `X-Duet-Color: ${color} for ${SETTLE_MS} ms (no reload's workers to watch)`,
    });
  }

  renderConf(color: Color): Promise<string> {
    const standby = otherColor(color);
    return renderAppConf(this.app, 'app-port.conf.template', {
      port: this.app.ports[color],
      color,
      standby_port: this.app.ports[standby],
      standby_color: standby,
    });
  }

  /** A port needs no opening: nginx's workers connect to loopback ports as any user. */
  openToNginx(): void {}

  socketOpener(): undefined {
    return undefined;
  }
}
