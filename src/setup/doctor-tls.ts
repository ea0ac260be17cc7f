import { existsSync } from 'node:fs';
import { acmeCertName, acmeRenewalConf, type AppConfig } from '../config/load.js';
import { DuetError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import { activeMarks, appConfPath } from '../switch/nginx-conf.js';
import { certificateIssued, checkCertificate, nameCovers, servedCertificate, servedNames } from '../switch/tls.js';
import { fail, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { SITE_FILE, underRoot } from './layout.js';

/** Let's Encrypt's certificates last 90 days and certbot renews at 30 left: 21 means it failed for 9 days. */
const MIN_DAYS_LEFT = 21;
const DAY_MS = 86_400_000;

/**
 * The app's certificate as nginx will load it: readable, a matching key, not expired, naming the
 * app's names, more than 21 days left; and the one nginx presents now, when it serves HTTPS.
 */
export async function checkTlsCertificate(ctx: DoctorContext, app: AppConfig, now = new Date()): Promise<CheckResult> {
  const name = `tls ${app.name}`;
  const paths = app.certificate!;
  const renew = app.tls.mode === 'acme' ? `sudo certbot renew --cert-name ${acmeCertName(app.name)}` : 'put a renewed certificate at tls.cert and tls.key';
  if (!certificateIssued(app, ctx.root)) {
    return fail(name, `no certificate yet at ${paths.cert}`, `deploy ${app.name} (its plain HTTP port serves the ACME challenge), then sudo duet install`);
  }
  let info;
  try {
    info = checkCertificate(app, paths, now);
  } catch (error) {
    if (!(error instanceof DuetError)) throw error;
    return fail(name, error.message, `${error.hint ?? ''}${/EACCES/.test(error.message) ? '; or run sudo duet doctor' : ''}`);
  }
  const missing = servedNames(app).filter((host) => !info.names.some((certName) => nameCovers(certName, host)));
  if (missing.length) {
    return fail(
      name,
      `${paths.cert} names ${info.names.join(', ') || 'nothing'}, not ${missing.join(', ')}`,
      app.tls.mode === 'acme' ? 'sudo duet install (certbot --expand adds the names)' : 'use a certificate for every name of server_name and aliases',
    );
  }
  const days = Math.floor((info.notAfter.getTime() - now.getTime()) / DAY_MS);
  if (days <= MIN_DAYS_LEFT) {
    return fail(name, `${paths.cert} expires in ${days} days (${info.notAfter.toISOString()})`, `${renew}, then duet reload-tls ${app.name}`);
  }
  if (activeMarks(app).has('tls')) {
    const served = await servedCertificate(app);
    if (served && served.fingerprint !== info.fingerprint) {
      return fail(name, `nginx presents another certificate than ${paths.cert} (expiring ${served.notAfter.toISOString()})`, `duet reload-tls ${app.name}`);
    }
  }
  return pass(name, `${info.names.join(', ')}; expires in ${days} days`);
}

/**
 * acme: renewal is certbot's own (certbot.timer, or its cron job without systemd), and its
 * renewal conf for the app runs duet reload-tls afterwards.
 */
export async function checkTlsRenewal(ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `tls renewal ${app.name}`;
  const timers = ['/etc/systemd/system/timers.target.wants/certbot.timer', '/etc/cron.d/certbot'].filter((path) => existsSync(underRoot(ctx.root, path)));
  if (timers.length === 0) {
    return fail(
      name,
      'neither certbot.timer is enabled nor /etc/cron.d/certbot exists: nothing renews the certificate',
      'apt-get install certbot; systemctl enable --now certbot.timer',
    );
  }
  const renewal = acmeRenewalConf(app);
  const conf = await readFileIfExists(underRoot(ctx.root, renewal)).catch(() => undefined);
  if (conf === undefined) return fail(name, `no ${renewal}: certbot has not issued ${app.name}'s certificate`, 'sudo duet install');
  if (!new RegExp(`^renew_hook\\s*=.*reload-tls ${app.name}\\s*$`, 'm').test(conf)) {
    return fail(
      name,
      `${renewal} runs no duet reload-tls after a renewal: nginx would keep the old certificate`,
      'sudo duet install (it passes --deploy-hook to certbot)',
    );
  }
  return pass(name, `${timers.join(', ')}; then duet reload-tls ${app.name}`);
}

/** `certbot --nginx` edits what it finds; in a file duet writes, its lines go at the next switch. */
export async function checkCertbotMarker(ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `certbot edits ${app.name}`;
  const config = ctx.setup.config;
  const owned = [appConfPath(app, config), ...(config.nginx.managed ? [config.nginx.managed.mainConf] : [SITE_FILE])];
  const edited: string[] = [];
  for (const path of owned) {
    if ((await readFileIfExists(underRoot(ctx.root, path)).catch(() => undefined))?.includes('# managed by Certbot')) edited.push(path);
  }
  if (edited.length === 0) return pass(name, 'no "# managed by Certbot" line in the files duet writes');
  return {
    name,
    ok: true,
    warning: true,
    detail: `certbot --nginx edited ${edited.join(', ')}: duet rewrites ${edited.length === 1 ? 'it' : 'them'}, and the edits go`,
    fix: `set tls.mode: acme for ${app.name} (certbot certonly --webroot, duet writes the TLS lines), or your own lines in ${app.includeDir}/*.conf`,
  };
}
