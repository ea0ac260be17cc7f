import type { AppConfig, Config } from '../config/load.js';
import type { Color } from '../config/schema.js';
import type { OutputSink } from '../util/run.js';
import type { ReloadMark } from './nginx-workers.js';
import { PortSwitch } from './port-switch.js';
import type { VerifyOptions } from './proxy.js';
import { SocketSwitch } from './socket-switch.js';
import type { SocketOpener } from './socket-opener.js';

export type { VerifyOptions };

/** What a switch did, for the verify after it. */
export interface Switched {
  /** A port-mode switch that reloaded nginx: the workers that must stop accepting. */
  reload?: ReloadMark;
}

/**
 * How nginx is pointed at a color: one implementation per `switch`, port (port-switch.ts: a conf
 * naming the color's port, and a reload) or socket (socket-switch.ts: the live.sock symlink).
 * Everything above talks to this interface and is the same for both.
 */
export interface Switch {
  /** Which color nginx is configured to send the app's traffic to, read from disk; undefined: never connected. */
  configuredColor(config: Config): Promise<Color | undefined>;
  /** What the public port actually serves, asked over HTTP (a fresh connection); undefined when it does not answer. */
  servingColor(options?: { timeoutMs?: number }): Promise<Color | undefined>;
  /** Send the app's public traffic to `color`, without verifying it: verify does. */
  switchTo(config: Config, color: Color, options?: { output?: OutputSink }): Promise<Switched>;
  /** Check through the public port that nginx serves `color`; returns how it knows, for the journal. */
  verify(color: Color, options?: VerifyOptions): Promise<string>;
  /** The app's nginx conf for `color` live. */
  renderConf(color: Color): Promise<string>;
  /** Let nginx's workers (another user) reach a color the app has just (re)started. */
  openToNginx(color: Color): void;
  /** duet serve's watch that opens each color to nginx the moment the app listens; undefined: nothing to open. */
  socketOpener(onError: (socket: string, error: Error) => void): SocketOpener | undefined;
  /** What a switch does, for the journal: "nginx reloaded", "symlink renamed". */
  readonly switchDetail: string;
}

const switches = new WeakMap<AppConfig, Switch>();

/** The app's switch, chosen once per loaded app by its `switch`. */
export function switchOf(app: AppConfig): Switch {
  let chosen = switches.get(app);
  if (!chosen) {
    chosen = app.switch === 'socket' ? new SocketSwitch(app) : new PortSwitch(app);
    switches.set(app, chosen);
  }
  return chosen;
}

interface ConnectOptions {
  output?: OutputSink;
  verifyTimeoutMs?: number;
}

/** Send the app's public traffic to `color`, then check that nginx really does. */
export async function connectToNginx(app: AppConfig, config: Config, color: Color, options: ConnectOptions = {}): Promise<void> {
  const to = switchOf(app);
  const switched = await to.switchTo(config, color, options);
  await to.verify(color, { output: options.output, timeoutMs: options.verifyTimeoutMs, reload: switched.reload });
}
