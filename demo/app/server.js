// The demo's app: a cafeteria menu whose version comes from VERSION. duet runs two copies of it
// (blue and green) and passes PORT (a TCP port, or a unix socket path in socket mode) and HOST.
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const version = fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim();
const port = process.env.PORT ?? '3000';
const host = process.env.HOST ?? '127.0.0.1';
const where = /^\d+$/.test(port) ? { port: Number(port), host } : { path: port };

const menu = ['Bibimbap', 'Kimchi stew', 'Tofu salad'];

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-app-version': version });
  res.end(`<h1>Cafeteria menu — ${version}</h1>\n<ul>${menu.map((dish) => `<li>${dish}</li>`).join('')}</ul>\n`);
});

// Finish the requests in flight, close idle keep-alive connections, exit 0.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
});

// A real app loads its code, config and connections before it listens: about 300 ms here.
setTimeout(() => {
  server.listen(where, () => console.log(`cafeteria ${version} listening on ${port}`));
}, 300);
