import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { DuetError } from '../../src/errors.js';
import { upstreamPort, proxiesToUnixSocket } from '../../src/switch/nginx-conf.js';
import { switchOf } from '../../src/switch/switch.js';
import { packageRoot, renderTemplateFile, type TemplateValues } from '../../src/switch/templates.js';

/** A template's text of the test's own, through the public path: select replaces the file's lines. */
const render = (text: string, values: TemplateValues): Promise<string> => renderTemplateFile('app-port.conf.template', values, () => text);

test('the package root is found from sources and from dist alike', () => {
  const root = packageRoot();
  assert.ok(existsSync(join(root, 'package.json')));
  assert.ok(existsSync(join(root, 'nginx', 'app-port.conf.template')));
  assert.equal(packageRoot(join(root, 'src', 'switch', 'templates.ts')), root);
  assert.equal(packageRoot(join(root, 'dist', 'src', 'switch', 'templates.js')), root);
});

test('placeholders are replaced; a missing value is an error, not an empty string', async () => {
  assert.equal(await render('listen {{listen}}; # {{ app }}', { listen: 8080, app: 'shop' }), 'listen 8080; # shop');
  await assert.rejects(render('server_name {{server_name}};', {}), (error: unknown) => {
    assert.ok(error instanceof DuetError);
    assert.match(error.message, /no value for the placeholder \{\{server_name\}\}/);
    return true;
  });
});

test('a value that could change the nginx syntax is refused, never escaped', async () => {
  for (const bad of ['a;b', 'a b', 'a{', '}', '"x"', "'x'", 'a\nb', '$host', '', 'a#b']) {
    await assert.rejects(render('x {{v}};', { v: bad }), /refusing to put/, JSON.stringify(bad));
  }
});

test('the rendered confs carry what duet reads back, with the other color as the fallback', async () => {
  const config = parseConfig(
    'state_dir: /var/lib/duet\napps:\n  my-shop: { clone_url: x, ports: { blue: 3001, green: 3002 }, listen: "127.0.0.1:8080" }\n',
    'test.yml',
  );
  const app = pickApp(config, 'my-shop');
  const green = await switchOf(app).renderConf('green');
  assert.equal(upstreamPort(green), 3002);
  assert.match(green, /upstream duet_my-shop_standby \{ # duet:fallback\n\s*server 127\.0\.0\.1:3001 max_fails=0;/);
  assert.match(green, /error_page 502 = @duet_fallback;/);
  assert.match(green, /listen 127\.0\.0\.1:8080;/);
  assert.match(green, /~:3001\$ blue;/);
  assert.match(green, /default green;/);
  assert.match(green, /add_header X-Duet-Color \$duet_my_shop_color always;/);
  assert.equal(proxiesToUnixSocket(green), false);

  const socket = await switchOf({ ...app, switch: 'socket' }).renderConf('blue');
  assert.match(socket, /server unix:\/var\/lib\/duet\/my-shop\/sockets\/live\.sock max_fails=0;/);
  assert.match(socket, /upstream duet_my-shop_standby \{ # duet:fallback\n\s*server unix:\/var\/lib\/duet\/my-shop\/sockets\/standby\.sock max_fails=0;/);
  assert.equal(upstreamPort(socket), undefined);
  assert.equal(proxiesToUnixSocket(socket), true);
  // A socket-mode file written before the fallback existed is still recognised.
  assert.equal(proxiesToUnixSocket('location / {\n    proxy_pass http://unix:/x/live.sock:;\n}\n'), true);
});

test('fallback: false leaves the standby upstream, the error_page and the fallback location out', async () => {
  const config = parseConfig('state_dir: /var/lib/duet\napps:\n  shop: { clone_url: x, ports: { blue: 3001, green: 3002 }, fallback: false }\n', 'test.yml');
  const app = pickApp(config, 'shop');
  for (const conf of [await switchOf(app).renderConf('green'), await switchOf({ ...app, switch: 'socket' }).renderConf('green')]) {
    assert.doesNotMatch(conf, /_standby|@duet_fallback|upstream_bytes_sent|[;{] # duet:fallback/);
    assert.equal((conf.match(/\{/g) ?? []).length, (conf.match(/\}/g) ?? []).length, 'every block that is left is whole');
  }
  assert.equal(upstreamPort(await switchOf(app).renderConf('green')), 3002);
});
