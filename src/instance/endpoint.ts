import { connect } from 'node:net';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import type { Target } from '../util/http-probe.js';

/** Where a color listens: a loopback port, or a unix socket path in socket mode. */
export type Endpoint = { kind: 'port'; port: number } | { kind: 'socket'; path: string };

export function endpointOf(app: AppConfig, color: Color): Endpoint {
  return app.switch === 'socket' ? { kind: 'socket', path: app.paths.socket[color] } : { kind: 'port', port: app.ports[color] };
}

/** The bare value `enabled-port`/`disabled-port` print, and what the app receives as PORT. */
export function endpointText(endpoint: Endpoint): string {
  return endpoint.kind === 'port' ? String(endpoint.port) : endpoint.path;
}

/** How node:http reaches the endpoint. */
export function endpointTarget(endpoint: Endpoint): Target {
  return endpoint.kind === 'socket' ? { socketPath: endpoint.path } : { host: '127.0.0.1', port: endpoint.port };
}

/** Whether something accepts connections there (ours or a stranger's). */
export async function isListening(endpoint: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = endpoint.kind === 'socket' ? connect(endpoint.path) : connect(endpoint.port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
