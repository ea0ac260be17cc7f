import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { TestContext } from 'node:test';
import { parseConfig, pickApp, type Config } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { stopManagedNginx } from '../../src/switch/managed-nginx.js';
import { connectToNginx, switchOf } from '../../src/switch/switch.js';
import { makeCertificate } from '../support/certificates.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';
import { closeServer, fetchAs } from './fixture.js';

/**
 * Several apps on one public port (docs/configuration.md, "Several apps on one port"): nginx picks
 * each app's server by name (Host, and SNI over HTTPS, each with its own certificate), and duet
 * asks the port by the app's name, so each app's switch, verify and status see that app only.
 */

async function backend(t: TestContext, port: number, says: string): Promise<void> {
  const server = createServer((_req, res) => res.end(`${says}\n`));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  t.after(() => closeServer(server));
}

const appYaml = (name: string, host: string, listen: number, tls: string, ports: number[]): string[] => [
  `  ${name}:`,
  `    clone_url: /srv/${name}.git`,
  `    listen: "127.0.0.1:${listen}"`,
  `    server_name: ${host}`,
  `    ports: { blue: ${ports[0]}, green: ${ports[1]} }`,
  `    tls: ${tls}`,
];

test('two apps share the plain and the HTTPS port by name: each its own certificate and colors, switched and asked apart', async (t) => {
  // Registered before tempDir's cleanup: node:test runs after hooks in registration order, and
  // nginx's prefix (its pid file) must outlive the stop.
  let config: Config | undefined;
  t.after(async () => {
    if (config) await stopManagedNginx(config);
  });
  const stateDir = await tempDir(t, 'duet-shared-listen');
  const [listen, tlsListen, ...ports] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const shopCert = await makeCertificate(stateDir, 'shop', { names: ['shop.test'] });
  const cafeCert = await makeCertificate(stateDir, 'cafe', { names: ['cafe.test'] });
  const tls = (cert: { cert: string; key: string }) => `{ mode: files, listen: "127.0.0.1:${tlsListen}", cert: ${cert.cert}, key: ${cert.key} }`;
  const yaml = [
    `state_dir: ${stateDir}`,
    'nginx: { managed: true }',
    'apps:',
    ...appYaml('shop', 'shop.test', listen!, tls(shopCert), ports.slice(0, 2)),
    ...appYaml('cafe', 'cafe.test', listen!, tls(cafeCert), ports.slice(2, 4)),
  ].join('\n');
  config = parseConfig(yaml, 'test.yml');
  const shop = pickApp(config, 'shop');
  const cafe = pickApp(config, 'cafe');
  for (const [app, color, port] of [
    ['shop', 'blue', ports[0]],
    ['shop', 'green', ports[1]],
    ['cafe', 'blue', ports[2]],
    ['cafe', 'green', ports[3]],
  ] as const)
    await backend(t, port!, `${app} ${color}`);

  await connectToNginx(shop, config, 'blue');
  await connectToNginx(cafe, config, 'green');
  const https = `https://127.0.0.1:${tlsListen}/`;
  const fingerprint = async (path: string) => new X509Certificate(await readFile(path)).fingerprint256;
  const shopAnswer = await fetchAs('shop.test', https);
  const cafeAnswer = await fetchAs('cafe.test', https);
  assert.deepEqual([shopAnswer.body, shopAnswer.fingerprint], ['shop blue', await fingerprint(shopCert.cert)]);
  assert.deepEqual([cafeAnswer.body, cafeAnswer.fingerprint], ['cafe green', await fingerprint(cafeCert.cert)]);
  assert.equal((await fetchAs('cafe.test', `http://127.0.0.1:${listen}/x`)).status, 301, 'plain HTTP redirects, per app');
  // What duet reads of each: the same port, asked by each app's name.
  assert.equal(await switchOf(shop).servingColor(), 'blue');
  assert.equal(await switchOf(cafe).servingColor(), 'green');

  await connectToNginx(shop, config, 'green');
  assert.equal((await fetchAs('shop.test', https)).body, 'shop green');
  assert.equal((await fetchAs('cafe.test', https)).body, 'cafe green', 'the other app is not touched');
  await connectToNginx(cafe, config, 'blue');
  assert.equal(await switchOf(shop).servingColor(), 'green');
  assert.equal(await switchOf(cafe).servingColor(), 'blue');
});

test('a shared port needs every app on it named apart and speaking one protocol; color ports stay their own', () => {
  const refused = (apps: string[][], pattern: RegExp) =>
    assert.throws(
      () => parseConfig(['state_dir: /tmp/x', 'apps:', ...apps.flat()].join('\n'), 'duet.yml'),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );
  const app = (name: string, host: string, listen: number, ports: number[], tls = '{ mode: off }') => appYaml(name, host, listen, tls, ports);
  refused(
    [app('shop', '_', 8080, [1, 2]), app('cafe', 'cafe.test', 8080, [3, 4])],
    /apps\.cafe\.listen: port 8080 is shared with apps\.shop\.listen, so each app on it needs a server_name of its own \(apps\.shop\.server_name is _/,
  );
  refused([app('shop', 'shop.test', 8080, [1, 2]), app('cafe', 'shop.test', 8080, [3, 4])], /both name shop\.test: nginx could not tell their requests apart/);
  refused(
    [app('shop', 'shop.test', 8080, [1, 2], '{ mode: files, listen: 8443, cert: /c, key: /k }'), app('cafe', 'cafe.test', 8443, [3, 4])],
    /apps\.cafe\.listen: port 8443 is apps\.shop\.tls\.listen \(https\), and one port cannot serve both plain HTTP and HTTPS/,
  );
  refused(
    [app('shop', 'shop.test', 8080, [1, 2]), app('cafe', 'cafe.test', 8081, [2, 3])],
    /apps\.cafe\.ports\.blue: port 2 is already used by apps\.shop\.ports\.green/,
  );
  refused(
    [app('shop', 'shop.test', 8080, [1, 2]), app('cafe', 'cafe.test', 1, [3, 4])],
    /apps\.cafe\.listen: port 1 is already used by apps\.shop\.ports\.blue/,
  );
  const shared = parseConfig(
    ['state_dir: /tmp/x', 'apps:', ...app('shop', 'shop.test', 8080, [1, 2]), ...app('cafe', 'cafe.test', 8080, [3, 4])].join('\n'),
    'duet.yml',
  );
  assert.deepEqual([...shared.apps.keys()], ['shop', 'cafe']);
});
