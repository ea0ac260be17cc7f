import { request } from 'node:http';
import { connect } from 'node:net';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';

/** Where a color listens: a loopback port, or a unix socket path in socket mode. */
export type Endpoint = { kind: 'port'; port: number } | { kind: 'socket'; path: string };

export function endpointOf(app: AppConfig, color: Color): Endpoint {
  return app.switch === 'socket' ? { kind: 'socket', path: app.paths.socket[color] } : { kind: 'port', port: app.ports[color] };
}

/** The bare value `enabled-port`/`disabled-port` print, and what the app receives as PORT. */
export function endpointText(endpoint: Endpoint): string {
  return endpoint.kind === 'port' ? String(endpoint.port) : endpoint.path;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** One GET with Connection: close, so no pooled socket outlives the question. */
export function httpGet(endpoint: Endpoint | { kind: 'host'; host: string; port: number }, path: string, timeoutMs: number): Promise<HttpAnswer> {
  const target =
    endpoint.kind === 'socket'
      ? { socketPath: endpoint.path }
      : endpoint.kind === 'port'
        ? { host: '127.0.0.1', port: endpoint.port }
        : { host: endpoint.host, port: endpoint.port };
  return new Promise((resolve, reject) => {
    const req = request({ ...target, path, method: 'GET', agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
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
