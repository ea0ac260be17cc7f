import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { servedCertificate } from '../../src/switch/tls.js';
import { makeCertificate } from '../support/certificates.js';
import { setupDuet } from '../support/duet.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const fingerprint = async (path: string) => new X509Certificate(await readFile(path)).fingerprint256;

test('duet reload-tls serves a replaced certificate, refuses a bad one and leaves nginx as it was; bootup keeps HTTPS; install refuses a bad pair', async (t) => {
  const tlsPort = await freePort();
  const dir = await tempDir(t, 'duet-reload-tls');
  const first = await makeCertificate(dir, 'first', { names: ['shop.test'] });
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  await copyFile(first.cert, live.cert);
  await copyFile(first.key, live.key);
  const s = await setupDuet(t, {
    app: { server_name: 'shop.test', tls: `{ mode: files, listen: "127.0.0.1:${tlsPort}", cert: ${live.cert}, key: ${live.key} }` },
  });
  await s.succeed(['deploy', '--ref', 'v1']);
  assert.equal((await servedCertificate(s.app))?.fingerprint, await fingerprint(first.cert));

  // The operator puts a renewed pair in place: nginx serves it once told.
  const second = await makeCertificate(dir, 'second', { names: ['shop.test'] });
  await copyFile(second.cert, live.cert);
  await copyFile(second.key, live.key);
  const reloaded = await s.succeed(['reload-tls']);
  assert.match(reloaded.stdout, /^cafeteria: reloaded \(shop\.test; expires .*, in 8\d days\)$/m);
  assert.equal((await servedCertificate(s.app))?.fingerprint, await fingerprint(second.cert));
  assert.match((await s.succeed(['status'])).stdout, /^ {2}https: certificate expires in 8\d days \(\d{4}-/m);

  // A certificate put in place without its key: refused, and nginx keeps the pair it has.
  const third = await makeCertificate(dir, 'third', { names: ['shop.test'] });
  await copyFile(third.cert, live.cert);
  const refused = await s.duet(['reload-tls']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /the key .*live\.key does not belong to the certificate .*live\.crt/);
  assert.match(refused.stderr, /hint: .*tls\.cert and tls\.key/);
  assert.equal((await servedCertificate(s.app))?.fingerprint, await fingerprint(second.cert));
  const https = await execa('curl', ['-sk', '--resolve', `shop.test:${tlsPort}:127.0.0.1`, `https://shop.test:${tlsPort}/`]);
  assert.match(https.stdout, /cafeteria v1/, 'the app is still served');
  // A deploy refuses it as well, before anything changes.
  const deploy = await s.duet(['deploy', '--ref', 'v2']);
  assert.equal(deploy.code, 1);
  assert.match(deploy.stderr, /does not belong to the certificate/);
  assert.equal((await servedCertificate(s.app))?.fingerprint, await fingerprint(second.cert));

  // A reboot's down and bootup bring HTTPS back with it (the good pair again first).
  await copyFile(second.cert, live.cert);
  await s.succeed(['down']);
  assert.equal(await servedCertificate(s.app), undefined, 'nothing serves after down');
  await s.succeed(['bootup']);
  assert.equal((await servedCertificate(s.app))?.fingerprint, await fingerprint(second.cert));
  await copyFile(third.cert, live.cert);

  // duet install checks the pair before it writes anything (a dry run on this machine reads only).
  const install = await s.duet(['install', '--dry-run']);
  assert.equal(install.code, 1, install.stdout + install.stderr);
  assert.match(install.stderr, /does not belong to the certificate/);
});
