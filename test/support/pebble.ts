import { writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { pollUntil } from '../../src/util/poll.js';
import { makeCertificate } from './certificates.js';
import { freePort } from './ports.js';

/**
 * Let's Encrypt's test CA (Debian's pebble) on loopback, with pebble-challtestsrv as its DNS:
 * every name resolves to 127.0.0.1, so the HTTP-01 challenge for any name is fetched from
 * `httpPort` on this machine (duet's nginx). Both are stopped when the test ends.
 */
export interface Pebble {
  /** The ACME directory, for certbot's --server. */
  directoryUrl: string;
  /** The root that issues the certificates (from the management API), PEM: a client's --cacert. */
  issuingRoot(): Promise<string>;
  /** certbot's own options for this CA: pebble's directory has a certificate of the test's making. */
  certbotOptions: string[];
}

export async function startPebble(t: TestContext, dir: string, options: { httpPort: number }): Promise<Pebble> {
  const [acmePort, managementPort, dnsPort, dnsManagementPort, tlsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const own = await makeCertificate(dir, 'pebble', { names: ['localhost'] });
  const config = join(dir, 'pebble.json');
  await writeFile(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: own.cert,
        privateKey: own.key,
        httpPort: options.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const children: ResultPromise[] = [];
  t.after(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.allSettled(children);
  });
  const logs = { stdout: join(dir, 'pebble.log'), stderr: join(dir, 'pebble.log') };
  // Without -defaultIPv6 "" pebble dials [::1] first, where nothing listens.
  children.push(
    execa(
      'pebble-challtestsrv',
      ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsManagementPort}`].concat([
        '-http01',
        '',
        '-https01',
        '',
        '-tlsalpn01',
        '',
      ]),
      { stdin: 'ignore', stdout: { file: join(dir, 'challtestsrv.log') }, stderr: { file: join(dir, 'challtestsrv.log') }, reject: false },
    ),
  );
  children.push(
    execa('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], {
      stdin: 'ignore',
      stdout: { file: logs.stdout },
      stderr: { file: logs.stderr },
      reject: false,
      // No sleep before validating; every nonce accepted (its default refuses 5%, which only
      // tests a client's retry); the challenge really fetched (PEBBLE_VA_ALWAYS_VALID unset).
      env: { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_VA_ALWAYS_VALID: '' },
    }),
  );
  const directoryUrl = `https://localhost:${acmePort}/dir`;
  const up = await pollUntil(async () => ((await fetchText(directoryUrl)) !== undefined ? true : undefined), { timeoutMs: 20_000 });
  if (!up) throw new Error(`pebble did not answer on ${directoryUrl} within 20 s (see ${logs.stdout})`);
  return {
    directoryUrl,
    certbotOptions: ['--no-verify-ssl'],
    issuingRoot: async () => {
      const pem = await fetchText(`https://localhost:${managementPort}/roots/0`);
      if (pem === undefined) throw new Error("pebble's management API gave no root");
      return pem;
    },
  };
}

/** GET over HTTPS without checking pebble's certificate (it is the test's own); undefined on any failure. */
function fetchText(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = get(url, { rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}
