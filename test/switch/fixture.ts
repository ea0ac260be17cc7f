import { createServer, request, type Agent, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TestContext } from 'node:test';
import { parseConfig, pickApp, type AppConfig, type Config } from '../../src/config/load.js';
import type { Color } from '../../src/config/schema.js';
import { stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { managedNginxPid } from '../../src/switch/nginx-workers.js';
import { childrenOf } from '../../src/util/proc.js';
import { pollUntil } from '../../src/util/poll.js';
import { publicTarget } from '../../src/util/http-probe.js';
import { makeSocketReachable } from '../../src/switch/socket-permissions.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

export interface Fixture {
  stateDir: string;
  config: Config;
  app: AppConfig;
  listenPort: number;
  /** Run at the end of the test, before the temp dir goes, last registered first. */
  cleanup(fn: () => unknown): void;
}

export interface FixtureOptions {
  mode?: 'port' | 'socket';
  /** Another app config on the same state dir (same managed nginx), e.g. with a broken listen. */
  listen?: string;
  /** More lines of the app's duet.yml (each indented by 4 spaces), such as its tls settings. */
  appYaml?: string[];
}

/**
 * A managed-nginx setup in a fresh state dir with ports picked now. nginx is stopped when the test
 * ends, pass or fail -- registered before tempDir's own cleanup, because node:test runs `after`
 * hooks in registration order and the prefix must outlive the nginx that uses it.
 */
export async function switchFixture(t: TestContext, options: FixtureOptions = {}): Promise<Fixture> {
  const cleanups: Array<() => unknown> = [];
  let config: Config | undefined;
  t.after(async () => {
    const errors: unknown[] = [];
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    }
    if (config) await stopManagedNginx(config);
    if (errors.length > 0) throw errors[0];
  });
  const stateDir = await tempDir(t, 'duet-switch');
  const [listenPort, blue, green] = [await freePort(), await freePort(), await freePort()];
  config = makeConfig(stateDir, { mode: options.mode, listen: options.listen ?? `127.0.0.1:${listenPort}`, ports: { blue, green }, appYaml: options.appYaml });
  return { stateDir, config, app: pickApp(config, 'shop'), listenPort, cleanup: (fn) => cleanups.push(fn) };
}

export function makeConfig(stateDir: string, o: { mode?: 'port' | 'socket'; listen: string; ports: Record<Color, number>; appYaml?: string[] }): Config {
  const yaml = `
state_dir: ${stateDir}
nginx: { managed: true }
apps:
  shop:
    clone_url: /srv/shop.git
    listen: "${o.listen}"
    switch: ${o.mode ?? 'port'}
    ports: { blue: ${o.ports.blue}, green: ${o.ports.green} }
${(o.appYaml ?? []).map((line) => `    ${line}\n`).join('')}`;
  return parseConfig(yaml, 'test.yml');
}

/**
 * A stand-in instance: answers every request with 200 and its color as the body. In socket mode
 * it listens where duet expects the color's socket and is made reachable for nginx's workers
 * (unless `reachable: false`: then the socket keeps the umask's 0755, which nobody cannot use).
 */
export async function startBackend(f: Fixture, color: Color, options: { reachable?: boolean } = {}): Promise<Server> {
  const server = createServer((_req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end(`${color}\n`);
  });
  f.cleanup(() => closeServer(server));
  if (f.app.switch === 'socket') {
    const path = f.app.paths.socket[color];
    await mkdir(dirname(path), { recursive: true });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
    if (options.reachable !== false) makeSocketReachable(path, f.app.paths.root);
  } else {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(f.app.ports[color], '127.0.0.1', resolve));
  }
  return server;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface Answer {
  status: number;
  body: string;
  color: string | undefined;
}

/**
 * GET through nginx's public port; `agent` to reuse keep-alive connections, else a fresh one.
 * `reused` learns whether the request went over an already open connection.
 */
export function get(app: AppConfig, path = '/', agent?: Agent, reused?: (yes: boolean) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ ...publicTarget(app.listen), path, agent: agent ?? false }, (res) => {
      reused?.(req.reusedSocket);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const header = res.headers['x-duet-color'];
        resolve({ status: res.statusCode ?? 0, body: body.trim(), color: Array.isArray(header) ? header[0] : header });
      });
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * The managed master's one worker (worker_processes 1). A reload replaces it and nothing else
 * does, so an unchanged pid proves there was no reload. Polled until exactly one is left, because
 * right after a reload the old worker is still draining beside the new one.
 */
export async function workerPid(config: Config): Promise<number> {
  const master = managedNginxPid(config);
  if (master === undefined) throw new Error('the managed nginx is not running');
  const pid = await pollUntil(
    async () => {
      const workers = childrenOf(master);
      return workers.length === 1 ? workers[0] : undefined;
    },
    { timeoutMs: 10_000 },
  );
  if (pid === undefined) throw new Error(`nginx ${master} does not settle on one worker`);
  return pid;
}

export function collectOutput(): { write(chunk: string): void; text(): string } {
  let all = '';
  return { write: (chunk) => void (all += chunk), text: () => all };
}

export interface NamedAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** Over HTTPS: the SHA-256 fingerprint of the certificate the server presented. */
  fingerprint?: string;
}

/** One request on a fresh connection as `name` (Host, and SNI over HTTPS), the certificate taken as it comes. */
export function fetchAs(name: string, url: string): Promise<NamedAnswer> {
  return new Promise((resolve, reject) => {
    const https = url.startsWith('https:');
    const options = { agent: false, headers: { Host: name }, ...(https ? { servername: name, rejectUnauthorized: false } : {}) };
    const req = (https ? httpsRequest : request)(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const fingerprint = https ? (res.socket as TLSSocket).getPeerCertificate().fingerprint256 : undefined;
        resolve({ status: res.statusCode ?? 0, body: body.trim(), headers: res.headers, fingerprint });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}
