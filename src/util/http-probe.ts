import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * `tls`: over HTTPS, with this SNI name (none for an IP or `_`). The certificate is not checked:
 * the probe asks duet's own nginx on this machine which color answers, and a certificate about to
 * be replaced (or one from an internal CA) must not make a switch fail; doctor checks it.
 * `name`: the Host header, so that nginx picks the app's server on a port several apps share.
 */
export type Target = { host: string; port: number; tls?: { servername?: string }; name?: string } | { socketPath: string };

/** The connection closed in the middle of the answer: the server had taken the request. */
export class AnswerCutOff extends Error {
  constructor() {
    super('the answer was cut off');
  }
}

export interface ProbeResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * Where to reach an app's public server from this machine. `listen: 8080` makes nginx listen on
 * every address, so loopback reaches it; a wildcard address is reached through loopback too.
 */
export function publicTarget(listen: number | string): { host: string; port: number } {
  if (typeof listen === 'number') return { host: '127.0.0.1', port: listen };
  const colon = listen.lastIndexOf(':');
  let host = listen.slice(0, colon);
  const port = Number(listen.slice(colon + 1));
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return { host, port };
}

export function describeTarget(target: Target): string {
  if ('socketPath' in target) return target.socketPath;
  const where = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return target.tls ? `https://${where}` : where;
}

/**
 * One GET on a fresh connection (`agent: false`, `Connection: close`): a pooled keep-alive
 * connection could still be held by an nginx worker from before a reload and answer with the old
 * configuration, which would make a verification lie. Rejects with the network error (its code,
 * such as ECONNREFUSED, is what an operator needs to see) or on timeout.
 */
export function httpGet(target: Target, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const name = 'host' in target && target.name ? { Host: target.name } : {};
    const common = { path, method: 'GET', agent: false, headers: { Connection: 'close', 'User-Agent': 'duet', ...name }, timeout: timeoutMs } as const;
    const onResponse = (res: import('node:http').IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
      // After 'end' this is a no-op; without 'end' the body was cut off: no answer.
      res.on('close', () => reject(new AnswerCutOff()));
    };
    const req =
      'host' in target && target.tls
        ? httpsRequest({ host: target.host, port: target.port, ...common, servername: target.tls.servername, rejectUnauthorized: false }, onResponse)
        : request({ ...('host' in target ? { host: target.host, port: target.port } : target), ...common }, onResponse);
    // `timeout` only watches socket inactivity; the timer bounds the whole exchange.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('close', () => clearTimeout(timer));
    req.end();
  });
}

/** httpGet for polling: "no answer" is an expected state while nginx or an instance comes up. */
export function probe(target: Target, path: string, timeoutMs: number): Promise<ProbeResult | undefined> {
  return httpGet(target, path, timeoutMs).catch(() => undefined);
}
