// The app the benchmark deploys. It behaves like a small real service at start: it loads its
// code and dependencies (CPU work), connects to its backing services (waiting), and only then
// listens, so /health answers once it can serve. The version it serves comes from VERSION.
//
// BENCH_APP_LOG (optional): a file to which it appends one JSON line when it listens (the
// wall-clock time its process started and the time it began to listen) and one when it exits
// after a stop signal (when the signal came, when it exited). The benchmark uses them to tell
// "waiting on the app" apart from the deploy tool's own time.
//
// behaviour.json (optional, committed only in a version meant to fail): `crashAfterMs` makes it
// exit with code 1 that long after it began to listen, as a version with a bug that shows only a
// moment after start would (the benchmark's "the app fails" section). Without the file nothing
// changes. Before it exits it logs how many connections it had open: every request it answers is
// answered synchronously, so what a crash takes down is what waits on those connections.
//
// GET /request-of-death, in every version, makes the process exit at once without an answer: a
// request that kills any instance it reaches (the benchmark's "request of death").
'use strict';
const spawnedAt = Date.now() - process.uptime() * 1000;
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const version = fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim();
const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8'));
const behaviourFile = path.join(__dirname, 'behaviour.json');
const behaviour = fs.existsSync(behaviourFile) ? JSON.parse(fs.readFileSync(behaviourFile, 'utf8')) : {};

// "Load the code": require the real dependencies when there are any, then ~120 ms of CPU work
// standing in for parsing and compiling an app's own modules.
for (const dep of Object.keys(pkg.dependencies ?? {})) require(dep);
const busyUntil = Date.now() + 120;
let sink = 0;
while (Date.now() < busyUntil) sink += crypto.createHash('sha256').update(String(sink)).digest()[0];

const page = `<h1>bench app ${version}</h1>\n<p>${'lorem ipsum dolor sit amet '.repeat(20)}</p>\n`;
const server = http.createServer((req, res) => {
  if (req.url === '/request-of-death') {
    appLog({ event: 'crashed', crashAt: Date.now(), connections: null });
    process.exit(1);
  }
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-app-version': version });
  res.end(page);
});
server.keepAliveTimeout = 65_000;

// Finish requests in flight, close idle keep-alive connections, exit. pm2 sends SIGINT, duet and
// the naive restart SIGTERM: both are handled the same way.
let signalAt;
function shutdown() {
  if (signalAt === undefined) {
    signalAt = Date.now();
    process.on('exit', () => appLog({ event: 'stopped', signalAt, exitAt: Date.now() }));
  }
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

function appLog(fields) {
  const log = process.env.BENCH_APP_LOG;
  if (!log) return;
  const line = { version, color: process.env.DUET_COLOR ?? null, pid: process.pid, ...fields };
  fs.appendFileSync(log, `${JSON.stringify(line)}\n`);
}

const port = process.env.PORT ?? '3000';
// socket_activation: duet hands the socket over as fd 3 (LISTEN_FDS=1) and keeps it across restarts.
const where = process.env.LISTEN_FDS === '1' ? { fd: 3 } : /^\d+$/.test(port) ? { port: Number(port), host: process.env.HOST ?? '127.0.0.1' } : { path: port };

// "Connect to the database": ~250 ms of waiting before the app can serve.
setTimeout(() => {
  server.listen(where, () => {
    appLog({ event: 'listening', spawnedAt, listeningAt: Date.now() });
    console.log(`bench app ${version} listening on ${port}`);
    if (behaviour.crashAfterMs !== undefined) crashIn(behaviour.crashAfterMs);
  });
}, 250);

function crashIn(ms) {
  setTimeout(() => {
    server.getConnections((_error, connections) => {
      appLog({ event: 'crashed', crashAt: Date.now(), connections: connections ?? null });
      console.error(`bench app ${version}: crashing ${ms} ms after listening, as behaviour.json asks`);
      process.exit(1);
    });
  }, ms);
}
