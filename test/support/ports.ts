import { createServer } from 'node:net';

// Below Linux's ephemeral range (32768-60999): a port the kernel hands out for bind(0) can be
// taken a moment later as the local end of any outgoing connection (nginx to an upstream, a
// test's HTTP client), which made a test's nginx or app fail to bind now and then under load.
// Above duet's own defaults (20201/20202), so a duet running on the machine is left alone.
const FIRST = 21000;
const LAST = 32000;
const taken = new Set<number>();

/**
 * A TCP port that is free now: a random one from a range the kernel never picks by itself,
 * checked by binding it on loopback, never handed out twice by this process. Picked at run
 * time so that parallel test files never collide on a hard-coded port.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = FIRST + Math.floor(Math.random() * (LAST - FIRST));
    if (taken.has(port)) continue;
    if (await canBind(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP port in ${FIRST}-${LAST} after 200 tries`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
