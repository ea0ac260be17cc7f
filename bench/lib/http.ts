import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

const now = (): number => performance.timeOrigin + performance.now();

export interface Probe {
  sentAt: number;
  answeredAt: number;
  status: number;
  version: string | undefined;
}

/** One GET with Connection: close (a fresh connection, as a new visitor would open). */
export function probe(port: number, path = '/', timeoutMs = 2000): Promise<Probe> {
  const sentAt = now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => {
        const header = res.headers['x-app-version'];
        resolve({ sentAt, answeredAt: now(), status: res.statusCode ?? 0, version: Array.isArray(header) ? header[0] : header });
      });
      res.on('error', () => resolve({ sentAt, answeredAt: now(), status: 0, version: undefined }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ sentAt, answeredAt: now(), status: 0, version: undefined }));
    req.end();
  });
}

/**
 * A tight loop of probes through the public port: one request at a time, each sent as soon as the
 * previous one is answered (well under a millisecond apart on loopback). It shows when the public
 * port starts answering with a new version.
 */
export function startPoller(port: number): { stop(): Promise<Probe[]> } {
  const probes: Probe[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      probes.push(await probe(port));
      // Let the event loop breathe if nothing answers (connection refused returns at once).
      if (probes.at(-1)!.status === 0) await sleep(1);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return probes;
    },
  };
}

/** The first probe answered by `version`: when the public port showed the new version. */
export function firstAnswerBy(probes: readonly Probe[], version: string, after = 0): Probe | undefined {
  return probes.find((p) => p.version === version && p.sentAt >= after);
}

export async function waitForVersion(port: number, version: string, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answer = await probe(port);
    if (answer.status === 200 && answer.version === version) return true;
    await sleep(20);
  }
  return false;
}

export async function waitForHealth(port: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await probe(port, '/health', 1000)).status === 200) return true;
    await sleep(20);
  }
  return false;
}
