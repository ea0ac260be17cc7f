import type { AppConfig, Config } from '../config/load.js';
import { DuetError, UsageError } from '../errors.js';
import { readFileIfExists } from '../util/atomic-file.js';
import { pollUntil } from '../util/poll.js';
import type { OutputSink } from '../util/run.js';
import { appConfPath } from '../switch/nginx-conf.js';
import { switchOf } from '../switch/switch.js';
import { reloadNginx } from '../switch/nginx-reload.js';
import { markBeforeReload, stillAccepting, type ReloadMark } from '../switch/nginx-workers.js';
import { certificateIssued, checkCertificate, servedCertificate, type CertificateInfo } from '../switch/tls.js';
import type { OperationOptions } from './operation.js';
import { connectColor } from './color-acts.js';

const SERVED_TIMEOUT_MS = 10_000;

interface ReloadTlsResult {
  certificate: CertificateInfo;
  /** What was done: reloaded (same conf, new files), rewritten (the conf changed), or checked only. */
  action: 'reloaded' | 'rewritten' | 'checked';
}

/**
 * A replaced certificate (the operator's, or certbot's renewal through its deploy hook) made live:
 * checked first (a bad one changes nothing), then nginx reloaded, or, when the conf must change
 * (acme's first certificate turns HTTP-only into HTTPS), the live color connected again under the
 * app's lock. Returns once nginx presents the new certificate.
 */
export async function reloadTls(config: Config, app: AppConfig, options: OperationOptions & { output?: OutputSink }): Promise<ReloadTlsResult> {
  if (app.certificate === undefined) {
    throw new UsageError(`${app.name} has tls.mode off: there is no certificate to reload`, 'set tls in duet.yml (docs/https.md)');
  }
  if (!certificateIssued(app)) {
    throw new DuetError(`${app.name}: certbot has issued no certificate yet (${app.certificate.cert} does not exist)`, {
      step: 'tls',
      hint: 'sudo duet install obtains it (certbot certonly --webroot); nginx keeps serving plain HTTP meanwhile',
    });
  }
  const certificate = checkCertificate(app, app.certificate);
  const color = await switchOf(app).configuredColor(config);
  if (color === undefined) {
    options.output?.write(`reload-tls: ${app.name} is not connected yet; its first connect loads the certificate\n`);
    return { certificate, action: 'checked' };
  }
  let action: ReloadTlsResult['action'] = 'reloaded';
  let mark: ReloadMark | undefined;
  if ((await readFileIfExists(appConfPath(app, config))) !== (await switchOf(app).renderConf(color))) {
    // The live color is connected again, not judged: a certificate is no reason to refuse it.
    await connectColor(config, app, color, { ...options, force: true });
    action = 'rewritten';
  } else {
    mark = markBeforeReload(config);
    await reloadNginx(config, options.output);
  }
  // Done when the new certificate answers and no worker from before the reload still takes new
  // connections (for ~100 ms after a reload an old one may: nginx-workers.ts).
  const served = await pollUntil(
    async () => ((await servedCertificate(app))?.fingerprint === certificate.fingerprint && (!mark || stillAccepting(mark).length === 0) ? true : undefined),
    { timeoutMs: SERVED_TIMEOUT_MS },
  );
  if (!served) {
    throw new DuetError(`${app.name}: nginx does not present ${app.certificate.cert} on ${String(app.tls.listen)} after the reload`, {
      step: 'tls',
      hint: "see nginx's error log; another server block on that port may answer for this name",
    });
  }
  return { certificate, action };
}
