import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { colors } from '../config/schema.js';
import { isSocket } from './live-socket.js';
import { makeSocketReachable } from './socket-permissions.js';

/**
 * Opens each color's socket to nginx's workers the moment the app creates it. An app restarted
 * by duet serve (or by systemd, under `runner: systemd`) makes its socket anew with its own
 * umask, which nginx's workers (nobody/www-data) cannot connect to; until it is opened every
 * request for that color fails over to the standby (or is a 502 with `fallback: false`).
 * Waiting for the next health probe to notice would leave that gap open for up to a
 * supervision interval; inotify tells within a millisecond of the bind().
 */
export class SocketOpener {
  private watcher: FSWatcher | undefined;

  constructor(
    private readonly app: AppConfig,
    private readonly onError: (socket: string, error: Error) => void,
  ) {}

  /**
   * Watches the sockets directory, if it does not already. A directory that does not exist yet
   * (the app was never deployed) is not an error: the owner calls this again on its next look.
   */
  start(): this {
    if (this.watcher) return this;
    const dir = dirname(this.app.paths.socket.blue);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name) this.open(name.toString());
      });
      this.watcher.on('error', () => this.close());
    } catch {
      this.watcher = undefined;
    }
    return this;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private open(name: string): void {
    for (const color of colors) {
      const socket = this.app.paths.socket[color];
      if (basename(socket) !== name || !isSocket(socket) || isOpen(socket)) continue;
      try {
        makeSocketReachable(socket, this.app.paths.root);
      } catch (error) {
        // Gone again between the event and the chmod (the app crashed at once): nothing to open.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(socket, error as Error);
      }
    }
  }
}

/** Already 0666: the chmod's own inotify event must not start another chmod. */
function isOpen(socket: string): boolean {
  try {
    return (statSync(socket).mode & 0o777) === 0o666;
  } catch {
    return true;
  }
}
