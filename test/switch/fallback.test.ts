import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { mkdir, readlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import type { Color } from '../../src/config/schema.js';
import { publicTarget } from '../../src/util/http-probe.js';
import { connectToNginx, switchOf } from '../../src/switch/switch.js';
import { makeSocketReachable } from '../../src/switch/socket-permissions.js';
import { closeServer, startBackend, switchFixture, type Fixture } from './fixture.js';

interface Reply {
  status: number;
  body: string;
  color: string | undefined;
  upstream: string | undefined;
}

function send(f: Fixture, method = 'GET', path = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ ...publicTarget(f.app.listen), path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: body.trim(),
          color: res.headers['x-duet-color'] as string | undefined,
          upstream: res.headers['x-duet-upstream'] as string | undefined,
        }),
      );
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(method === 'POST' ? 'x' : undefined);
  });
}

interface Recording {
  server: Server;
  /** `METHOD path` of every request the instance received. */
  received: string[];
}

/**
 * An instance that records each request and answers `<color> <path>`; `drop` makes it drop the
 * connection without an answer instead, `dieOn` makes it stop listening and drop it, as a
 * process killed by that request would, and `hangOn` makes it keep the request unanswered.
 */
async function startRecording(f: Fixture, color: Color, o: { drop?: () => boolean; dieOn?: string; hangOn?: string } = {}): Promise<Recording> {
  const received: string[] = [];
  const server = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    if (req.url === o.hangOn) return;
    if (req.url === o.dieOn) {
      server.close();
      server.closeAllConnections();
      return;
    }
    if (o.drop?.()) return req.socket.destroy();
    res.end(`${color} ${req.url}\n`);
  });
  f.cleanup(() => closeServer(server));
  await listenAs(f, color, server);
  return { server, received };
}

/** Listen where the color's instance is expected: its socket (made reachable for nginx) or its port. */
async function listenAs(f: Fixture, color: Color, server: Server): Promise<void> {
  if (f.app.switch === 'socket') {
    const path = f.app.paths.socket[color];
    await mkdir(dirname(path), { recursive: true });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    makeSocketReachable(path, f.app.paths.root);
  } else {
    await new Promise<void>((resolve) => server.listen(f.app.ports[color], '127.0.0.1', resolve));
  }
}

for (const mode of ['port', 'socket'] as const) {
  test(`${mode} mode: when the live color refuses connections, the other color answers the same request`, async (t) => {
    const f = await switchFixture(t, { mode });
    const blue = await startBackend(f, 'blue');
    await startBackend(f, 'green');
    await connectToNginx(f.app, f.config, 'blue');
    const whoAnswered = (reply: Reply): string | undefined => (mode === 'port' ? reply.color : reply.upstream);
    assert.deepEqual([(await send(f)).body, whoAnswered(await send(f))], ['blue', mode === 'port' ? 'blue' : 'live']);

    await closeServer(blue);
    for (let i = 0; i < 5; i += 1) {
      const reply = await send(f);
      assert.equal(reply.status, 200, `request ${i}`);
      assert.equal(reply.body, 'green');
      assert.equal(whoAnswered(reply), mode === 'port' ? 'green' : 'standby');
    }
    assert.equal(await switchOf(f.app).configuredColor(f.config), 'blue', 'the fallback is per request: nothing was switched');
    assert.equal(await switchOf(f.app).servingColor(), 'green', 'status tells which color actually answers');

    await startBackend(f, 'blue');
    assert.equal((await send(f)).body, 'blue', 'the live color has its traffic back at once');
  });

  test(`${mode} mode: a switch moves the fallback with it`, async (t) => {
    const f = await switchFixture(t, { mode });
    await startBackend(f, 'blue');
    const green = await startBackend(f, 'green');
    await connectToNginx(f.app, f.config, 'blue');
    await connectToNginx(f.app, f.config, 'green');
    if (mode === 'socket') {
      assert.equal(await readlink(f.app.paths.liveSocket), 'green.sock');
      assert.equal(await readlink(f.app.paths.standbySocket), 'blue.sock');
    }
    await closeServer(green);
    assert.equal((await send(f)).body, 'blue');
  });

  test(`${mode} mode: an HTTP error the app answered is the answer`, async (t) => {
    const f = await switchFixture(t, { mode });
    const failing = createServer((_req, res) => {
      res.statusCode = 500;
      res.end('blue says 500\n');
    });
    f.cleanup(() => closeServer(failing));
    await listenAs(f, 'blue', failing);
    const green = await startRecording(f, 'green');
    await connectToNginx(f.app, f.config, 'blue', { verifyTimeoutMs: 200 }).catch(() => {
      // socket mode verifies a 2xx, which this blue never gives; the switch itself is done
    });
    const reply = await send(f);
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'blue says 500');
    assert.deepEqual(green.received, []);
  });

  test(`${mode} mode: a request the live color received is never sent to the other color, whatever its method`, async (t) => {
    const f = await switchFixture(t, { mode });
    const blue = await startRecording(f, 'blue', { drop: () => true });
    const green = await startRecording(f, 'green');
    await connectToNginx(f.app, f.config, 'blue', { verifyTimeoutMs: 200 }).catch(() => {
      // socket mode verifies a 2xx, which this blue never gives; the switch itself is done
    });
    blue.received.length = 0;
    for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'POST']) {
      assert.equal((await send(f, method)).status, 502, `${method}: the dropped request fails, once`);
    }
    assert.deepEqual(blue.received, ['GET /', 'HEAD /', 'PUT /', 'DELETE /', 'OPTIONS /', 'POST /']);
    assert.deepEqual(green.received, [], 'not one of them reached the fallback');
  });

  test(`${mode} mode: a request the live color took and never answered is a 504, never resent to the other color`, async (t) => {
    const f = await switchFixture(t, { mode });
    // nginx waits 60 s for an answer by default. An http-level proxy_read_timeout in the conf dir,
    // which the app's server block inherits (it sets none), makes that 1 s here, as an operator's
    // own would; the app's conf itself is duet's, unchanged.
    await mkdir(f.config.nginx.confDir, { recursive: true });
    await writeFile(join(f.config.nginx.confDir, '00-read-timeout.conf'), 'proxy_read_timeout 1s;\n');
    const blue = await startRecording(f, 'blue', { hangOn: '/hang' });
    const green = await startRecording(f, 'green');
    await connectToNginx(f.app, f.config, 'blue');
    // send() gives up after 5 s: a 504 here is the 1 s read timeout, not nginx's default.
    for (const method of ['GET', 'POST']) assert.equal((await send(f, method, '/hang')).status, 504, `${method}: nginx's timeout is the answer`);
    assert.deepEqual(
      blue.received.filter((r) => r.endsWith('/hang')),
      ['GET /hang', 'POST /hang'],
      'each reached blue once',
    );
    assert.deepEqual(green.received, [], 'neither was resent to the other color');
  });

  test(`${mode} mode: a request of death kills the live color only; the fallback answers every other request`, async (t) => {
    const f = await switchFixture(t, { mode });
    const blue = await startRecording(f, 'blue', { dieOn: '/die' });
    const green = await startRecording(f, 'green', { dieOn: '/die' });
    await connectToNginx(f.app, f.config, 'blue');
    assert.equal((await send(f, 'GET', '/die')).status, 502, 'the one request that killed blue fails');
    assert.equal(blue.server.listening, false, 'blue died of it');
    for (let i = 0; i < 5; i += 1) {
      const reply = await send(f);
      assert.deepEqual([reply.status, reply.body], [200, 'green /'], `request ${i} after the crash`);
    }
    assert.equal(green.server.listening, true);
    assert.deepEqual(green.received, ['GET /', 'GET /', 'GET /', 'GET /', 'GET /'], 'green never saw /die');
  });

  test(`${mode} mode: every request reaches the live color over a connection of its own (no upstream keep-alive)`, async (t) => {
    const f = await switchFixture(t, { mode });
    const blue = await startRecording(f, 'blue');
    await startRecording(f, 'green');
    await connectToNginx(f.app, f.config, 'blue');
    // A connection kept to a color that then dies would carry the next request into it: nginx
    // could not tell that from a request the color received, and would answer 502, no fallback.
    let connections = 0;
    blue.server.on('connection', () => (connections += 1));
    blue.received.length = 0;
    for (let i = 0; i < 5; i += 1) assert.equal((await send(f)).body, 'blue /');
    assert.equal(blue.received.length, 5);
    assert.equal(connections, 5, 'one connection from nginx per request');
  });

  test(`${mode} mode: fallback: false sends nothing to the other color`, async (t) => {
    const f = await switchFixture(t, { mode });
    const app = pickApp(
      parseConfig(
        `state_dir: ${f.stateDir}\nnginx: { managed: true }\napps:\n  shop:\n    clone_url: x\n    listen: "${f.app.listen}"\n    switch: ${mode}\n    ports: { blue: ${f.app.ports.blue}, green: ${f.app.ports.green} }\n    fallback: false\n`,
        'test.yml',
      ),
      'shop',
    );
    const off = { ...f, app };
    const blue = await startBackend(off, 'blue');
    await startBackend(off, 'green');
    await connectToNginx(app, f.config, 'blue');
    await closeServer(blue);
    assert.equal((await send(off)).status, 502);
    if (mode === 'socket') await assert.rejects(readlink(app.paths.standbySocket), /ENOENT/);
  });
}
