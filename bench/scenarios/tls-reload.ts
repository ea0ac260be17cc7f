import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCertificate, type MadeCertificate } from '../../test/support/certificates.js';
import { freePort } from '../../test/support/ports.js';
import { ownDir, type Scope } from '../lib/cleanup.js';
import { createDuetEnv, mustCli, type DuetEnv } from '../lib/duet-env.js';
import type { Shims } from '../lib/shims.js';
import { DUET_TLS, RELOAD_TLS } from '../systems.js';
import { loadRowsAt, reloadRows, type ClientKind, type LoadRow, type LoadSettings } from './deploy-load.js';

/**
 * Section 1's certificate rows (issue 27): a duet app with `tls: files` behind duet's managed
 * nginx (port mode), loaded by wrk over HTTPS. Each event puts another certificate and key in
 * place (self-signed, made with openssl beforehand) and runs `duet reload-tls`, under its own wrk
 * run like a deploy; the same number of bare `nginx -s reload`s of that nginx over HTTPS is the
 * reference (a TLS client's keep-alive connections are closed by a reload as a plain one's are).
 */

export interface TlsSetup {
  env: DuetEnv;
  /** The HTTPS port nginx listens on. */
  tlsPort: number;
  /** The files duet.yml names; each event copies the next certificate over them. */
  live: MadeCertificate;
  /** One certificate per event and kind group, made while nothing is measured. */
  certificates: MadeCertificate[];
}

const SERVER_NAME = 'bench.test';

export async function prepareTls(scope: Scope, root: string, shims: Shims, events: number): Promise<TlsSetup> {
  const dir = join(root, 'tls-certificates');
  await mkdir(dir, { recursive: true });
  ownDir(dir);
  const first = await makeCertificate(dir, 'first', { names: [SERVER_NAME] });
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  await copyFile(first.cert, live.cert);
  await copyFile(first.key, live.key);
  const certificates: MadeCertificate[] = [];
  for (let i = 0; i < events; i += 1) certificates.push(await makeCertificate(dir, `c${i}`, { names: [SERVER_NAME] }));
  const tlsPort = await freePort();
  const env = await createDuetEnv(scope, root, shims, {
    name: 'tls',
    switchMode: 'port',
    app: {
      server_name: SERVER_NAME,
      tls: `{ mode: files, listen: "127.0.0.1:${tlsPort}", cert: ${JSON.stringify(live.cert)}, key: ${JSON.stringify(live.key)} }`,
    },
  });
  await mustCli(env, ['deploy', '--ref', env.initialTag]);
  return { env, tlsPort, live, certificates };
}

/**
 * `duet reload-tls` after replacing the certificate files, `count` times per kind group, each
 * under its own load; then as many bare reloads of the same nginx over HTTPS.
 */
export async function tlsRows(setup: TlsSetup, groups: ClientKind[][], count: number, settings: LoadSettings): Promise<LoadRow[]> {
  const url = `https://127.0.0.1:${setup.tlsPort}/`;
  const rows: LoadRow[] = [];
  let next = 0;
  for (const kinds of groups) {
    const events = Array.from({ length: count }, () => async () => {
      const certificate = setup.certificates[next % setup.certificates.length]!;
      next += 1;
      await copyFile(certificate.cert, setup.live.cert);
      await copyFile(certificate.key, setup.live.key);
      return (await mustCli(setup.env, ['reload-tls'])).wallMs;
    });
    rows.push(...(await loadRowsAt(url, DUET_TLS, kinds, settings, events)));
  }
  for (const kinds of groups) rows.push(...(await reloadRows(setup.env, count, kinds, settings, { url, system: RELOAD_TLS })));
  return rows;
}
