import { createServer } from 'node:net';

/**
 * A TCP port that was free a moment ago: bind port 0 on loopback, read what the kernel chose,
 * close. Picked at run time so that parallel test files never collide on a hard-coded port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no TCP address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
