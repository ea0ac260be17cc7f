import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSecrets } from '../../src/config/secrets.js';
import { setupDuet } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';

test('secrets come from DUET_* or from the file DUET_*_FILE names, never both', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'webhook-secret');
  await writeFile(file, 's3cret\n');
  assert.deepEqual(await readSecrets({ DUET_WEBHOOK_SECRET_FILE: file, DUET_API_TOKEN: 'token' }), {
    webhookSecret: 's3cret',
    apiToken: 'token',
    githubToken: undefined,
  });
  await assert.rejects(readSecrets({ DUET_GITHUB_TOKEN: 'a', DUET_GITHUB_TOKEN_FILE: file }), /both DUET_GITHUB_TOKEN and DUET_GITHUB_TOKEN_FILE are set/);
  await assert.rejects(readSecrets({ DUET_API_TOKEN_FILE: join(dir, 'missing') }), /DUET_API_TOKEN_FILE: cannot read .*ENOENT/);
  await writeFile(file, '\n');
  await assert.rejects(readSecrets({ DUET_WEBHOOK_SECRET_FILE: file }), /is empty/);
});

test('duet serve refuses to start without a webhook secret (exit 2)', async (t) => {
  const { duet } = await setupDuet(t, { tags: { v1: {} } });
  const result = await duet(['serve'], { DUET_WEBHOOK_SECRET: '' });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /DUET_WEBHOOK_SECRET is not set/);
});
