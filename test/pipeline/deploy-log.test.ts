import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployLog } from '../../src/pipeline/deploy-log.js';
import { tempDir } from '../support/tmp.js';

test('the deploy log masks secret values, also one an install printed across two chunks of output', async (t) => {
  const path = join(await tempDir(t, 'duet-deploy-log'), 'deploy.log');
  const log = new DeployLog(path);
  log.maskValues(['hunter2-session-secret', 'postgres://u:pw@db/x']);
  log.write('postinstall sees hunter2-ses');
  log.write('sion-secret and ');
  log.write('postgres://u:pw@db/x\nnext line, no secret\nan unfinished line with hunter2-session-secret');
  log.line('step update done');
  log.write('the end, cut: hunter2-session-');
  log.close();
  const text = await readFile(path, 'utf8');
  assert.ok(!text.includes('hunter2-session-secret') && !text.includes('pw@db'), text);
  assert.match(text, /^postinstall sees \*\*\* and \*\*\*\nnext line, no secret\nan unfinished line with \*\*\*\[.*\] step update done\n/);
  assert.ok(text.endsWith('the end, cut: hunter2-session-'), 'what is left at close is written as it is');
});
