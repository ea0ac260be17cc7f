import { X509Certificate, createPrivateKey } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { acmeRenewalConf, type AppConfig, type CertificatePaths } from '../config/load.js';
import { DuetError } from '../errors.js';
import { publicTarget } from '../util/http-probe.js';

/** What duet knows of a certificate it checked: for doctor, status, the metrics. */
export interface CertificateInfo {
  /** The leaf's DNS names (subjectAltName), or its CN when it has none. */
  names: string[];
  notAfter: Date;
  fingerprint: string;
}

/** The PEM blocks of a chain file; the first is the leaf nginx presents. */
function leafOf(pem: string): X509Certificate | undefined {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  return first === undefined ? undefined : new X509Certificate(first);
}

function names(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san) {
    return san
      .split(', ')
      .filter((entry) => entry.startsWith('DNS:'))
      .map((entry) => entry.slice(4).toLowerCase());
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** Whether a certificate name covers `host`: equal, or a wildcard one label deep. */
export function nameCovers(name: string, host: string): boolean {
  const h = host.toLowerCase();
  if (name === h) return true;
  if (!name.startsWith('*.')) return false;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === name.slice(2);
}

function refuse(app: AppConfig, message: string, hint: string): DuetError {
  return new DuetError(`${app.name}: ${message}`, { step: 'tls', hint });
}

/**
 * Read and check the certificate nginx is about to load: present and readable, a key that belongs
 * to it, not expired. Every refusal comes before a file is written or nginx is told anything, so
 * nginx keeps serving what it served. `now` for tests.
 */
export function checkCertificate(app: AppConfig, paths: CertificatePaths, now = new Date()): CertificateInfo {
  const fix = app.tls.mode === 'acme' ? 'run sudo duet install (it runs certbot), or see certbot certificates' : 'fix tls.cert and tls.key in duet.yml';
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw refuse(app, `cannot read the TLS ${what} ${path} (${code})`, `${fix}; nginx's master reads it as root, duet checks it as its own user`);
    }
  };
  const certPem = read(paths.cert, 'certificate');
  let leaf: X509Certificate | undefined;
  try {
    leaf = leafOf(certPem);
  } catch (error) {
    throw refuse(app, `${paths.cert} is not a valid PEM certificate (${(error as Error).message})`, fix);
  }
  if (!leaf) throw refuse(app, `${paths.cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, fix);
  // The key need not be duet's to read (root's 0600, as certbot writes it, keeps it from the apps
  // that run as duet's user): nginx -t, run before every reload, refuses one that does not load or
  // match; duet checks it too where it may read it.
  const keyPem = readableKey(paths.key) ? read(paths.key, 'private key') : undefined;
  let matches = true;
  try {
    if (keyPem !== undefined) matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch (error) {
    throw refuse(app, `${paths.key} is not a private key nginx can load (${(error as Error).message})`, fix);
  }
  if (!matches) {
    throw refuse(
      app,
      `the key ${paths.key} does not belong to the certificate ${paths.cert}`,
      `${fix}: the key must be the one the certificate was issued for`,
    );
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw refuse(
      app,
      `the certificate ${paths.cert} expired on ${notAfter.toISOString()}`,
      `${fix}: renew it (acme: sudo certbot renew), then duet reload-tls ${app.name}`,
    );
  }
  return { names: names(leaf), notAfter, fingerprint: leaf.fingerprint256 };
}

/** A key that exists but is closed to this user (EACCES) is nginx's to check; a missing one is refused. */
function readableKey(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'EACCES';
  }
}

/**
 * Whether nginx has a certificate to load: files, always (checked before a switch); acme, once
 * certbot issued one, read from its renewal conf since duet's user cannot look into live/.
 */
export function certificateIssued(app: AppConfig, root = '/'): boolean {
  if (app.tls.mode === 'files') return true;
  return app.tls.mode === 'acme' && existsSync(join(root, acmeRenewalConf(app)));
}

/**
 * Check the certificate before a switch: always the operator's files; certbot's only where this
 * user can read them (the root-only live/ is read by nginx's master, whose reload refuses a bad one).
 */
export function checkBeforeSwitch(app: AppConfig): void {
  if (app.tls.mode === 'acme') {
    try {
      accessSync(app.certificate!.cert, constants.R_OK);
    } catch {
      return;
    }
  }
  checkCertificate(app, app.certificate!);
}

/** The names nginx serves for the app that a certificate must cover (`_` and wildcards aside). */
export function servedNames(app: AppConfig): string[] {
  return [app.server_name, ...app.aliases].filter((name) => name !== '_' && !name.includes('*'));
}

/**
 * With tls, the ACME webroot, passable and readable for nginx's workers (they are not duet's
 * user). The include directory is the operator's to make: nginx accepts a glob that matches nothing.
 */
export function prepareServerDirs(app: AppConfig): void {
  if (app.tls.mode === 'off') return;
  const challenges = `${app.paths.acmeWebroot}/.well-known/acme-challenge`;
  mkdirSync(challenges, { recursive: true, mode: 0o755 });
  for (let dir = challenges; dir !== dirname(dirname(app.paths.acmeWebroot)); dir = dirname(dir)) chmodSync(dir, 0o755);
}

/**
 * The certificate nginx presents on the app's HTTPS port now (a fresh handshake, SNI server_name),
 * or undefined when nothing answers there within `timeoutMs`.
 */
export function servedCertificate(app: AppConfig, timeoutMs = 2_000): Promise<{ fingerprint: string; notAfter: Date } | undefined> {
  const { host, port } = publicTarget(app.tls.listen);
  const servername = servedNames(app)[0];
  return new Promise((resolve) => {
    const socket = connect({ host, port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const done = (value: { fingerprint: string; notAfter: Date } | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      done(peer.fingerprint256 ? { fingerprint: peer.fingerprint256, notAfter: new Date(peer.valid_to) } : undefined);
    });
    socket.once('error', () => done(undefined));
  });
}
