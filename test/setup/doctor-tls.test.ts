import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CheckResult } from '../../src/setup/doctor-context.js';
import { appConfPath } from '../../src/switch/nginx-conf.js';
import { makeCertificate } from '../support/certificates.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { freePort } from '../support/ports.js';

const DAY_MS = 86_400_000;

/** duet doctor --json's checks whose name starts with `prefix`, by name. */
async function tlsChecks(s: DuetSetup, tls: string): Promise<Map<string, CheckResult>> {
  const yaml = (await readFile(s.configPath, 'utf8')).replace(/^ {4}tls: .*$/m, `    tls: ${tls}`);
  await writeFile(s.configPath, yaml);
  const result = await s.duet(['doctor', '--json']);
  assert.equal(result.code, 1, 'doctor fails (no GitHub here, at least)');
  const all = JSON.parse(result.stdout) as CheckResult[];
  return new Map(all.filter((check) => /^(tls|certbot)/.test(check.name)).map((check) => [check.name, check]));
}

test('doctor: a good certificate passes; an expired one, a key of another one, names it lacks and 21 days left each fail with the fix', async (t) => {
  const tlsPort = await freePort();
  const s = await setupDuet(t, { app: { server_name: 'shop.test', aliases: '[www.shop.test]', tls: '{ mode: off }' } });
  const dir = dirname(s.configPath);
  const good = await makeCertificate(dir, 'good', { names: ['shop.test', 'www.shop.test'] });
  const other = await makeCertificate(dir, 'other', { names: ['shop.test', 'www.shop.test'] });
  const expired = await makeCertificate(dir, 'expired', {
    names: ['shop.test', 'www.shop.test'],
    notBefore: new Date('2020-01-01'),
    notAfter: new Date('2020-02-01'),
  });
  const narrow = await makeCertificate(dir, 'narrow', { names: ['shop.test'] });
  const soon = await makeCertificate(dir, 'soon', { names: ['shop.test', 'www.shop.test'], notAfter: new Date(Date.now() + 10 * DAY_MS) });
  const files = (cert: string, key: string) => `{ mode: files, listen: "127.0.0.1:${tlsPort}", cert: ${cert}, key: ${key} }`;

  const ok = (await tlsChecks(s, files(good.cert, good.key))).get('tls cafeteria')!;
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.match(ok.detail, /shop\.test, www\.shop\.test; expires in 8\d days/);

  const cases: Array<[string, string, RegExp, RegExp]> = [
    ['expired', files(expired.cert, expired.key), /expired on 2020-02-01/, /renew it/],
    ['mismatched', files(good.cert, other.key), /the key .*other\.key does not belong to the certificate .*good\.crt/, /tls\.cert and tls\.key/],
    ['a name missing', files(narrow.cert, narrow.key), /names shop\.test, not www\.shop\.test/, /every name of server_name and aliases/],
    ['10 days left', files(soon.cert, soon.key), /expires in 9 days/, /duet reload-tls cafeteria/],
    ['missing', files(join(dir, 'none.crt'), good.key), /cannot read the TLS certificate .*none\.crt \(ENOENT\)/, /tls\.cert and tls\.key/],
  ];
  for (const [label, tls, detail, fix] of cases) {
    const check = (await tlsChecks(s, tls)).get('tls cafeteria')!;
    assert.equal(check.ok, false, `${label}: ${JSON.stringify(check)}`);
    assert.match(check.detail, detail, label);
    assert.match(check.fix, fix, label);
  }
});

test("doctor: acme without certbot's certificate and renewal conf fails; a certbot --nginx edit of duet's file is a warning", async (t) => {
  const s = await setupDuet(t, { app: { server_name: 'shop.test', tls: '{ mode: off }' } });
  const le = join(dirname(s.configPath), 'letsencrypt');
  const checks = await tlsChecks(s, `{ mode: acme, acme: { config_dir: ${le} } }`);
  assert.match(checks.get('tls cafeteria')!.detail, /no certificate yet at .*live\/duet-cafeteria\/fullchain\.pem/);
  assert.match(checks.get('tls cafeteria')!.fix, /deploy cafeteria .* then sudo duet install/);
  const renewal = checks.get('tls renewal cafeteria')!;
  assert.equal(renewal.ok, false);
  assert.match(renewal.detail, /certbot\.timer|renewal\/duet-cafeteria\.conf/);
  assert.equal(checks.get('certbot edits cafeteria')!.warning, undefined);

  const conf = appConfPath(s.app, s.config);
  await mkdir(dirname(conf), { recursive: true });
  await writeFile(conf, 'server {\n    listen 443 ssl; # managed by Certbot\n}\n');
  const edited = (await tlsChecks(s, `{ mode: acme, acme: { config_dir: ${le} } }`)).get('certbot edits cafeteria')!;
  assert.deepEqual([edited.ok, edited.warning], [true, true]);
  assert.match(edited.detail, /certbot --nginx edited .*duet-cafeteria\.conf/);
  const text = await s.duet(['doctor']);
  assert.match(text.stdout, /^! certbot edits cafeteria: /m);
});
