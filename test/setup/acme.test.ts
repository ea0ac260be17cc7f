import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { certbotArgv, obtainCertificate } from '../../src/setup/acme.js';
import type { CheckResult } from '../../src/setup/doctor-context.js';
import { servedCertificate } from '../../src/switch/tls.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { startLoad } from '../support/load.js';
import { startPebble, type Pebble } from '../support/pebble.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const NAME = 'shop.test';

interface World {
  s: DuetSetup;
  pebble: Pebble;
  tlsPort: number;
  rootPem: string;
  /** curl over HTTPS with pebble's issuing root as the only CA, `shop.test` resolved to loopback. */
  curl(path: string): Promise<{ code: number; stdout: string }>;
}

async function acmeWorld(t: Parameters<typeof setupDuet>[0], switchMode: 'port' | 'socket'): Promise<World> {
  const dir = await tempDir(t, 'duet-acme');
  const tlsPort = await freePort();
  const le = join(dir, 'letsencrypt');
  // The directory URL is known only once pebble runs on the HTTP port duet's nginx got: a
  // placeholder in duet.yml, replaced below before anything reads it.
  const s = await setupDuet(t, {
    switchMode,
    app: {
      server_name: NAME,
      aliases: `[www.${NAME}]`,
      tls: `{ mode: acme, listen: "127.0.0.1:${tlsPort}", acme: { directory_url: "https://localhost:1/dir", config_dir: ${le}, certbot: [certbot, --no-verify-ssl, --work-dir, ${join(dir, 'work')}, --logs-dir, ${join(dir, 'logs')}] } }`,
    },
  });
  const pebble = await startPebble(t, dir, { httpPort: s.listenPort });
  const yaml = (await readFile(s.configPath, 'utf8')).replace('https://localhost:1/dir', pebble.directoryUrl);
  await writeFile(s.configPath, yaml);
  s.app.tls.acme.directory_url = pebble.directoryUrl;
  const rootPem = join(dir, 'pebble-root.pem');
  return {
    s,
    pebble,
    tlsPort,
    rootPem,
    curl: async (path) => {
      const result = await execa('curl', ['-sS', '--cacert', rootPem, '--resolve', `${NAME}:${tlsPort}:127.0.0.1`, `https://${NAME}:${tlsPort}${path}`], {
        reject: false,
      });
      return { code: result.exitCode ?? -1, stdout: result.stdout };
    },
  };
}

async function certificateOnDisk(w: World): Promise<X509Certificate> {
  return new X509Certificate(await readFile(w.s.app.certificate!.cert));
}

async function servedFingerprint(w: World, fingerprint: string): Promise<boolean> {
  return (await pollUntil(async () => ((await servedCertificate(w.s.app))?.fingerprint === fingerprint ? true : undefined), { timeoutMs: 10_000 })) === true;
}

test("certbot's command line: webroot, every name, the CA, the account and the deploy hook, as argument array", () => {
  const config = parseConfig(
    `state_dir: /var/lib/duet\napps:\n  shop:\n    clone_url: x\n    server_name: shop.example.com\n    aliases: [www.shop.example.com]\n    tls: { mode: acme, acme: { email: ops@example.com } }\n`,
    '/etc/duet/duet.yml',
  );
  const argv = certbotArgv(pickApp(config, 'shop'), '/etc/duet/my duet.yml');
  assert.deepEqual(argv.slice(0, 8), ['certbot', 'certonly', '--webroot', '--webroot-path', '/var/lib/duet/acme/shop', '--cert-name', 'duet-shop', '-d']);
  assert.deepEqual(argv.slice(7, 11), ['-d', 'shop.example.com', '-d', 'www.shop.example.com']);
  const at = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.equal(at('--server'), 'https://acme-v02.api.letsencrypt.org/directory');
  assert.equal(at('--email'), 'ops@example.com');
  assert.equal(at('--config-dir'), '/etc/letsencrypt');
  assert.match(at('--deploy-hook')!, / --config '\/etc\/duet\/my duet\.yml' reload-tls shop$/);
});

for (const switchMode of ['port', 'socket'] as const) {
  test(
    `acme, ${switchMode} mode: certbot gets the certificate from pebble through duet's webroot; HTTPS serves the app across a deploy; plain HTTP redirects`,
    { timeout: 240_000 },
    async (t) => {
      const w = await acmeWorld(t, switchMode);
      await w.s.succeed(['deploy', '--ref', 'v1']);
      // Before the certificate: plain HTTP serves the app (and would serve the challenge).
      assert.match((await w.s.get('/')).body, /cafeteria v1/);

      await obtainCertificate(w.s.app, w.s.configPath);
      const cert = await certificateOnDisk(w);
      assert.match(cert.subjectAltName ?? '', new RegExp(`DNS:${NAME}.*DNS:www\\.${NAME}|DNS:www\\.${NAME}.*DNS:${NAME}`));
      // certbot's deploy hook ran duet reload-tls, which turned HTTPS on.
      assert.ok(await servedFingerprint(w, cert.fingerprint256), 'nginx presents the issued certificate');
      await writeFile(w.rootPem, await w.pebble.issuingRoot());
      const https = await w.curl('/');
      assert.equal(https.code, 0, 'curl trusts it with pebble root as its only CA');
      assert.match(https.stdout, /cafeteria v1/);

      const plain = await execa('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{redirect_url}',
        '-H',
        `Host: ${NAME}`,
        `http://127.0.0.1:${w.s.listenPort}/menu?x=1`,
      ]);
      assert.equal(plain.stdout, `301 https://${NAME}:${w.tlsPort}/menu?x=1`);
      const challenge = await execa('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        `http://127.0.0.1:${w.s.listenPort}/.well-known/acme-challenge/none`,
      ]);
      assert.equal(challenge.stdout, '404', 'the challenge path is served from the webroot, not redirected');

      await w.s.succeed(['deploy', '--ref', 'v2']);
      assert.match((await w.curl('/')).stdout, /cafeteria v2/);
      assert.ok(await servedFingerprint(w, cert.fingerprint256), 'the deploy kept the certificate');
      if (switchMode === 'socket') return;

      // A forced renewal under load: certbot's deploy hook reloads nginx; no Connection: close
      // request fails, and the new certificate is what nginx presents after it.
      const load = startLoad(w.tlsPort, { concurrency: 4, keepAlive: false, tls: { servername: NAME, ca: await readFile(w.rootPem, 'utf8') } });
      const renew = certbotArgv(w.s.app, w.s.configPath);
      const certbot = renew.slice(0, renew.indexOf('certonly'));
      await execa(certbot[0]!, [
        ...certbot.slice(1),
        'renew',
        '--force-renewal',
        '--no-random-sleep-on-renew',
        '--cert-name',
        'duet-cafeteria',
        '--config-dir',
        w.s.app.tls.acme.config_dir,
      ]);
      const renewed = await certificateOnDisk(w);
      assert.notEqual(renewed.fingerprint256, cert.fingerprint256);
      assert.ok(await servedFingerprint(w, renewed.fingerprint256), 'nginx presents the renewed certificate');
      await pollUntil(async () => (load.report.certificates[renewed.fingerprint256] ? true : undefined), { timeoutMs: 10_000 });
      const report = await load.stop();
      assert.equal(report.errors + report.non2xx, 0, `no request failed: ${JSON.stringify(report)}`);
      assert.ok(report.certificates[cert.fingerprint256]! > 0 && report.certificates[renewed.fingerprint256]! > 0, JSON.stringify(report.certificates));

      // doctor: the certificate covers the names, nginx presents it, certbot renews it and runs the hook.
      const doctor = JSON.parse((await w.s.duet(['doctor', '--json'])).stdout) as CheckResult[];
      for (const name of ['tls cafeteria', 'tls renewal cafeteria', 'certbot edits cafeteria']) {
        const check = doctor.find((c) => c.name === name);
        assert.equal(check?.ok, true, JSON.stringify(check));
      }
    },
  );
}
