// The app's "build": stamps the version into build.json, as a real build would emit artifacts.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const version = fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim();
fs.writeFileSync(path.join(__dirname, 'build.json'), `${JSON.stringify({ version, builtAt: new Date().toISOString() })}\n`);
