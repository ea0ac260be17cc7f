import { chmod, mkdir, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { AppConfig, Endpoint } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import type { Target } from '../util/http-probe.js';
import { releaseListener } from './listener-hold.js';

export type { Endpoint };

/** The bare value `enabled-port`/`disabled-port` print, and what the app receives as PORT. */
export function endpointText(endpoint: Endpoint): string {
  return endpoint.kind === 'port' ? String(endpoint.port) : endpoint.path;
}

/** How node:http reaches the endpoint. */
export function endpointTarget(endpoint: Endpoint): Target {
  return endpoint.kind === 'socket' ? { socketPath: endpoint.path } : { host: '127.0.0.1', port: endpoint.port };
}

/** Whether something accepts connections there (ours or a stranger's). */
async function isListening(endpoint: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = endpoint.kind === 'socket' ? connect(endpoint.path) : connect(endpoint.port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Before a start, whichever the runner: the color's port or socket is free for it. A port (or
 * socket) held by a process duet did not start is refused, not fought over.
 */
export async function claimEndpoint(app: AppConfig, color: Color): Promise<void> {
  const endpoint = app.endpoints[color];
  // With socket_activation duet binds the socket itself (startProcess), or its socket unit does
  // (systemd), over whatever the path holds: a socket there that queues connections with no app
  // is one held for the next process, no stranger's.
  const activation = endpoint.kind === 'socket' && app.socket_activation;
  if (!activation && (await isListening(endpoint))) {
    throw new DuetError(`${endpointText(endpoint)} is already taken by a process duet did not start`, {
      step: 'start',
      hint: `find it with \`ss -ltnp\` (or \`ss -lxp\` for sockets) and stop it, or give ${color} another port in the config`,
    });
  }
  if (endpoint.kind === 'socket') {
    const dir = dirname(endpoint.path);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    // app_user: the app, another user of duet's group, creates its socket here.
    if (app.appUser !== undefined) await chmod(dir, ((await stat(dir)).mode & 0o7777) | 0o070);
    // A socket file left by a crashed instance makes listen() fail with EADDRINUSE.
    if (!activation) await unlink(endpoint.path).catch(() => {});
  }
}

/**
 * After a stop: the color's socket goes, unless the runner keeps it (`keep`: socket_activation,
 * a restart, the socket held by duet or by systemd), queueing connections for the process that
 * follows.
 */
export async function releaseEndpoint(app: AppConfig, color: Color, keep: boolean): Promise<void> {
  const endpoint = app.endpoints[color];
  if (endpoint.kind !== 'socket' || keep) return;
  releaseListener(endpoint.path);
  await unlink(endpoint.path).catch(() => {});
}
