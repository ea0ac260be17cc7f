import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { mkdir, readlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import type { Color } from '../../src/config/schema.js';
import { publicTarget } from '../../src/util/http-probe.js';
import { configuredColor, connectToNginx, servingColor } from '../../src/switch/proxy.js';
import { makeSocketReachable } from '../../src/switch/socket-permissions.js';
import { closeServer, startBackend, switchFixture, type Fixture } from './fixture.js';

interface Reply {
  status: number;
  body: string;
  color: string | undefined;
  upstream: string | undefined;
}

function send(f: Fixture, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ ...publicTarget(f.app.listen), path: '/', method, agent: false }, (res) => {
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

/** An instance that takes each request and then drops the connection without an answer, as a process that dies mid-request. */
async function startDropping(f: Fixture, color: Color): Promise<{ received: string[] }> {
  const received: string[] = [];
  const server = createServer((req) => {
    received.push(req.method ?? '?');
    req.socket.destroy();
  });
  f.cleanup(() => closeServer(server));
  if (f.app.switch === 'socket') {
    const path = f.app.paths.socket[color];
    await mkdir(dirname(path), { recursive: true });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    makeSocketReachable(path, f.app.paths.root);
  } else {
    await new Promise<void>((resolve) => server.listen(f.app.ports[color], '127.0.0.1', resolve));
  }
  return { received };
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
    assert.equal(await configuredColor(f.app, f.config), 'blue', 'the fallback is per request: nothing was switched');
    assert.equal(await servingColor(f.app), 'green', 'status tells which color actually answers');

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

  test(`${mode} mode: an HTTP error the app answered is the answer; a dropped GET is retried, a dropped POST is not`, async (t) => {
    const f = await switchFixture(t, { mode });
    const failing = createServer((_req, res) => {
      res.statusCode = 500;
      res.end('blue says 500\n');
    });
    f.cleanup(() => closeServer(failing));
    if (mode === 'socket') {
      await mkdir(dirname(f.app.paths.socket.blue), { recursive: true });
      await new Promise<void>((resolve) => failing.listen(f.app.paths.socket.blue, resolve));
    } else {
      await new Promise<void>((resolve) => failing.listen(f.app.ports.blue, '127.0.0.1', resolve));
    }
    await startBackend(f, 'green');
    await connectToNginx(f.app, f.config, 'blue', { verifyTimeoutMs: 200 }).catch(() => {
      // socket mode verifies a 2xx, which this blue never gives; the switch itself is done
    });
    const reply = await send(f);
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'blue says 500');

    await closeServer(failing);
    const dropping = await startDropping(f, 'blue');
    assert.equal((await send(f, 'GET')).body, 'green', 'a GET the dying app never answered is answered by the fallback');
    assert.equal((await send(f, 'POST')).status, 502, 'a POST already sent is never sent twice');
    assert.deepEqual(dropping.received, ['GET', 'POST']);
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
