import { createServer } from 'node:http';
import { AppendLog } from '../../src/util/append-log.js';

/**
 * The floor for webhook intake on this machine: a bare node HTTP server that does only what no
 * receiver that promises durability can skip, one durable append per request (duet's own
 * AppendLog, O_DSYNC, group commit), then answers 202. No express, no signature, no parsing, no
 * queue, no log line. Run as `node floor-server.js <port> <file>`; GET answers 200 (readiness).
 */

const [port, file] = process.argv.slice(2);
if (!port || !file) throw new Error('usage: floor-server <port> <file>');
const log = new AppendLog(file, { everyWriteDurable: true });

createServer((req, res) => {
  if (req.method !== 'POST') return void res.end('ok');
  req.resume();
  req.on('end', () => {
    log.append(JSON.stringify({ delivery: req.headers['x-github-delivery'] ?? null })).then(
      () => res.writeHead(202, { 'content-type': 'application/json' }).end('{}'),
      (error: Error) => res.writeHead(500).end(error.message),
    );
  });
}).listen(Number(port), '127.0.0.1');

process.on('SIGTERM', () => void log.close().finally(() => process.exit(0)));
