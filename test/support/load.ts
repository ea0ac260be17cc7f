import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface LoadReport {
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** Body text of the first line each version answered with, counted. */
  versions: Record<string, number>;
  /** Non-2xx answers by status code. */
  statuses: Record<number, number>;
  /** Over HTTPS: answers by the SHA-256 fingerprint of the certificate they came with. */
  certificates: Record<string, number>;
  firstError: string | undefined;
}

/**
 * A crash of the live color fails the requests that were in it, and only those: nginx resends
 * none of them (to neither color) and hands every other one to the fallback. The load has at
 * most `concurrency` requests in flight; a loop whose request failed sends its next one at once,
 * which may still be accepted by the listening socket of the process being torn down, so a crash
 * costs at most twice that many 502s, and nothing else fails.
 */
export function assertOnlyInFlightFailed(report: LoadReport, concurrency: number, crashes = 1): void {
  const detail = `${report.errors} errors, ${report.non2xx} non-2xx ${JSON.stringify(report.statuses)} of ${report.requests}, first: ${report.firstError}`;
  assert.equal(report.errors, 0, `a connection to nginx failed: ${detail}`);
  assert.equal(report.non2xx, report.statuses[502] ?? 0, `only 502s, for requests the crashing color had: ${detail}`);
  assert.ok(report.non2xx <= 2 * concurrency * crashes, `at most the requests in flight at the crash failed: ${detail}`);
}

/**
 * A request loop through nginx: `concurrency` loops, each sending GET / back to back until
 * stopped. keepAlive reuses connections (what browsers do); without it every request opens and
 * closes its own, which hides the keep-alive race of an nginx reload.
 */
export function startLoad(port: number, options: { concurrency: number; keepAlive: boolean; tls?: { servername: string; ca: string } }) {
  const { tls } = options;
  const agentOptions = { keepAlive: options.keepAlive, maxSockets: options.concurrency };
  const agent = tls ? new HttpsAgent({ ...agentOptions, servername: tls.servername, ca: tls.ca }) : new Agent(agentOptions);
  const send = tls ? httpsRequest : request;
  const report: LoadReport = { requests: 0, ok: 0, non2xx: 0, errors: 0, versions: {}, statuses: {}, certificates: {}, firstError: undefined };
  let running = true;

  const once = () =>
    new Promise<void>((resolve) => {
      const req = send({ host: '127.0.0.1', port, path: '/', agent, headers: options.keepAlive ? {} : { connection: 'close' } }, (res) => {
        // Over HTTPS: which certificate the answer came with (a renewal under load changes it).
        const fingerprint = tls ? (res.socket as TLSSocket).getPeerCertificate().fingerprint256 : undefined;
        if (fingerprint) report.certificates[fingerprint] = (report.certificates[fingerprint] ?? 0) + 1;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          report.requests += 1;
          if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) {
            report.ok += 1;
            const version = /cafeteria (v\d+)/.exec(body)?.[1] ?? 'other';
            report.versions[version] = (report.versions[version] ?? 0) + 1;
          } else {
            report.non2xx += 1;
            report.statuses[res.statusCode ?? 0] = (report.statuses[res.statusCode ?? 0] ?? 0) + 1;
            report.firstError ??= `HTTP ${res.statusCode}`;
          }
          resolve();
        });
      });
      req.on('error', (error) => {
        report.requests += 1;
        report.errors += 1;
        report.firstError ??= error.message;
        resolve();
      });
      req.end();
    });

  const loops = Array.from({ length: options.concurrency }, async () => {
    while (running) await once();
  });

  return {
    report,
    async stop(): Promise<LoadReport> {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return report;
    },
  };
}
