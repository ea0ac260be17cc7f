import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseConfig, pickApp, type AppConfig } from '../../src/config/load.js';
import { DuetError } from '../../src/errors.js';
import { appConfPath } from '../../src/switch/nginx-conf.js';
import { connectToNginx, switchOf } from '../../src/switch/switch.js';
import { appStatus } from '../../src/pipeline/status.js';
import type { TriggerQueue } from '../../src/pipeline/trigger.js';
import { Metrics } from '../../src/http/metrics.js';
import { makeCertificate } from '../support/certificates.js';
import { freePort } from '../support/ports.js';
import { fetchAs, startBackend, switchFixture, type Fixture } from './fixture.js';

/** One request on a fresh connection as shop.test (Host, and SNI over HTTPS). */
const fetchOnce = (url: string) => fetchAs('shop.test', url);

async function tlsFixture(t: Parameters<typeof switchFixture>[0], mode: 'port' | 'socket', extra: string[] = []) {
  const tlsPort = await freePort();
  const f0 = await switchFixture(t, { mode });
  const good = await makeCertificate(f0.stateDir, 'good', { names: ['shop.test', 'www.shop.test'] });
  const lines = [
    'server_name: shop.test',
    'aliases: [www.shop.test]',
    `tls: { mode: files, listen: "127.0.0.1:${tlsPort}", cert: ${good.cert}, key: ${good.key}, hsts_max_age_s: 300 }`,
    ...extra,
  ];
  const f = withApp(f0, lines);
  return { f, tlsPort, good, https: `https://127.0.0.1:${tlsPort}`, http: `http://127.0.0.1:${f.listenPort}` };
}

/** The fixture with its app's yaml lines replaced (same state dir, ports, managed nginx). */
function withApp(f: Fixture, lines: string[]): Fixture {
  const app = f.app;
  const yaml = [
    `state_dir: ${f.stateDir}`,
    'nginx: { managed: true }',
    'apps:',
    '  shop:',
    '    clone_url: /srv/shop.git',
    `    listen: "${String(app.listen)}"`,
    `    switch: ${app.switch}`,
    `    ports: { blue: ${app.ports.blue}, green: ${app.ports.green} }`,
    ...lines.map((line) => `    ${line}`),
  ].join('\n');
  const config = parseConfig(yaml, 'test.yml');
  return { ...f, config, app: pickApp(config, 'shop') };
}

const fingerprintOf = async (path: string) => new X509Certificate(await readFile(path)).fingerprint256;

for (const mode of ['port', 'socket'] as const) {
  test(`tls files, ${mode} mode: HTTPS with HTTP/2 serves the live color across switches; plain HTTP redirects but for the ACME challenge`, async (t) => {
    const { f, good, https, http, tlsPort } = await tlsFixture(t, mode);
    await startBackend(f, 'blue');
    await startBackend(f, 'green');
    // The operator's own lines, in the include directory duet never writes.
    await mkdir(f.app.includeDir, { recursive: true });
    await writeFile(join(f.app.includeDir, 'extra.conf'), 'location = /from-include { return 204; }\n');

    await connectToNginx(f.app, f.config, 'blue');
    assert.equal(await switchOf(f.app).configuredColor(f.config), 'blue');
    assert.equal(await switchOf(f.app).servingColor(), 'blue', 'duet asks over HTTPS');
    const blue = await fetchOnce(`${https}/`);
    assert.equal(blue.body, 'blue');
    assert.equal(blue.fingerprint, await fingerprintOf(good.cert));
    assert.equal(blue.headers['strict-transport-security'], 'max-age=300');
    assert.equal((await fetchOnce(`${https}/from-include`)).status, 204);
    const version = await execa('curl', [
      '-sk',
      '--http2',
      '-o',
      '/dev/null',
      '-w',
      '%{http_version}',
      '--resolve',
      `shop.test:${tlsPort}:127.0.0.1`,
      `https://shop.test:${tlsPort}/`,
    ]);
    assert.equal(version.stdout, '2');

    const redirect = await fetchOnce(`${http}/a/b?c=1`);
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, `https://shop.test:${tlsPort}/a/b?c=1`);
    const challenges = join(f.app.paths.acmeWebroot, '.well-known', 'acme-challenge');
    await writeFile(join(challenges, 'token-1'), 'token-1.thumbprint');
    const challenge = await fetchOnce(`${http}/.well-known/acme-challenge/token-1`);
    assert.deepEqual([challenge.status, challenge.body], [200, 'token-1.thumbprint']);

    // What nginx presents, as duet status and /metrics tell it.
    const notAfter = new X509Certificate(await readFile(good.cert)).validTo;
    const status = await appStatus(f.config, f.app);
    assert.equal(status.tls?.expiresAt, new Date(notAfter).toISOString());
    assert.equal(status.tls?.daysLeft, 89);
    const metrics = await new Metrics(f.config, { depth: () => 0 } as unknown as TriggerQueue).registry.metrics();
    assert.match(metrics, new RegExp(`^duet_tls_certificate_expiry_timestamp_seconds\\{app="shop"\\} ${new Date(notAfter).getTime() / 1000}$`, 'm'));

    await connectToNginx(f.app, f.config, 'green');
    assert.equal((await fetchOnce(`${https}/`)).body, 'green');
    assert.equal((await fetchOnce(`${http}/`)).status, 301);
    const conf = await readFile(appConfPath(f.app, f.config), 'utf8');
    assert.match(conf, new RegExp(`listen 127\\.0\\.0\\.1:${tlsPort} ssl http2;`));
    assert.match(conf, /ssl_protocols TLSv1\.2 TLSv1\.3;/);
    assert.match(conf, /server_name shop\.test www\.shop\.test;/);
    assert.match(conf, /include .*duet-shop\.d\/\*\.conf;/);
    assert.match(conf, /# duet:fallback/, 'the fallback lines stay beside the tls ones');
  });
}

test('tls: a missing certificate, a key of another certificate or an expired one fails the switch with a hint; nginx keeps serving', async (t) => {
  const { f, good, https } = await tlsFixture(t, 'port');
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'blue');
  const before = await readFile(appConfPath(f.app, f.config), 'utf8');

  const other = await makeCertificate(f.stateDir, 'other', { names: ['shop.test'] });
  const expired = await makeCertificate(f.stateDir, 'expired', { names: ['shop.test'], notBefore: new Date('2020-01-01'), notAfter: new Date('2020-02-01') });
  const cases: Array<[string, string, string, RegExp]> = [
    ['missing', join(f.stateDir, 'nope.crt'), good.key, /cannot read the TLS certificate .*nope\.crt \(ENOENT\)/],
    ['mismatched', good.cert, other.key, /the key .*other\.key does not belong to the certificate .*good\.crt/],
    ['expired', expired.cert, expired.key, /expired on 2020-02-01/],
  ];
  for (const [label, cert, key, message] of cases) {
    const bad = withApp(f, ['server_name: shop.test', `tls: { mode: files, listen: "${String(f.app.tls.listen)}", cert: ${cert}, key: ${key} }`]);
    await assert.rejects(connectToNginx(bad.app, bad.config, 'green'), (error: unknown) => {
      assert.ok(error instanceof DuetError, label);
      assert.equal(error.step, 'tls');
      assert.match(error.message, message);
      assert.match(error.hint ?? '', /tls\.cert and tls\.key/);
      return true;
    });
    assert.equal(await readFile(appConfPath(f.app, f.config), 'utf8'), before, `${label}: the conf is untouched`);
    const answer = await fetchOnce(`${https}/`);
    assert.deepEqual([answer.body, answer.fingerprint], ['blue', await fingerprintOf(good.cert)], `${label}: nginx serves as before`);
  }
});

test("tls: a broken line in the operator's include directory is refused by nginx; the previous conf stays", async (t) => {
  const { f, https } = await tlsFixture(t, 'port');
  await startBackend(f, 'blue');
  await startBackend(f, 'green');
  await connectToNginx(f.app, f.config, 'blue');
  await mkdir(f.app.includeDir, { recursive: true });
  await writeFile(join(f.app.includeDir, 'broken.conf'), 'no_such_directive on;\n');
  await assert.rejects(connectToNginx(f.app, f.config, 'green'), /no_such_directive/);
  assert.equal((await fetchOnce(`${https}/`)).body, 'blue');
  assert.equal(await switchOf(f.app).configuredColor(f.config), 'blue');
});

test('tls acme before its first certificate: plain HTTP serves the app and the challenge; a server_name of _ is refused', async () => {
  const yaml = (name: string) =>
    `state_dir: /var/lib/duet\napps:\n  shop:\n    clone_url: x\n    server_name: ${name}\n    tls: { mode: acme, acme: { config_dir: /nonexistent/letsencrypt } }\n`;
  const app: AppConfig = pickApp(parseConfig(yaml('shop.test'), 'test.yml'), 'shop');
  assert.equal(app.certificate?.cert, '/nonexistent/letsencrypt/live/duet-shop/fullchain.pem');
  const conf = await switchOf(app).renderConf('blue');
  assert.match(conf, /listen 8080;/);
  assert.doesNotMatch(conf, /ssl_certificate|return 301/);
  assert.match(conf, /location \/\.well-known\/acme-challenge\/ \{ # duet:challenge\n\s*root \/var\/lib\/duet\/acme\/shop;/);
  assert.throws(() => parseConfig(yaml('_'), 'test.yml'), /apps\.shop\.server_name: tls\.mode acme needs a server_name/);
  assert.throws(() => parseConfig(yaml('shop.test').replace('mode: acme', 'mode: files'), 'test.yml'), /tls\.cert: mode: files needs tls\.cert/);
});
