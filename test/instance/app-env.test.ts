import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inheritedEnv } from '../../src/util/child-env.js';
import { setupDuet } from '../support/duet.js';

const SECRETS = {
  DUET_WEBHOOK_SECRET: 'whsec-must-not-leak',
  DUET_API_TOKEN: 'api-token-must-not-leak',
  DUET_GITHUB_TOKEN: 'ghs_must_not_leak',
  DUET_GITHUB_TOKEN_FILE: '/etc/duet/credentials/github-token',
  AWS_SECRET_ACCESS_KEY: 'an-unrelated-secret-of-the-operator-shell',
};

const parseEnv = (text: string, separator: string): Map<string, string> =>
  new Map(
    text
      .split(separator)
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

test("the app, its install and its build get a built environment: never duet's secrets or the rest of its environment", async (t) => {
  const setup = await setupDuet(t, {
    app: {
      install: "'mkdir -p node_modules && env > install-env.txt'",
      build: "'env > build-env.txt'",
      env: '{ NODE_ENV: production, CAFETERIA_DB: "postgres://localhost/cafeteria" }',
    },
  });
  await setup.succeed(['deploy', '--ref', 'v1'], { ...SECRETS, LANG: 'C.UTF-8' });
  const pid = Number((await setup.succeed(['pid', 'blue'])).stdout.trim());
  const seen = {
    app: parseEnv(await readFile(`/proc/${pid}/environ`, 'utf8'), '\0'),
    install: parseEnv(await readFile(join(setup.app.paths.checkout.blue, 'install-env.txt'), 'utf8'), '\n'),
    build: parseEnv(await readFile(join(setup.app.paths.checkout.blue, 'build-env.txt'), 'utf8'), '\n'),
  };
  for (const [who, env] of Object.entries(seen)) {
    for (const name of Object.keys(SECRETS)) assert.ok(!env.has(name), `${who} must not see ${name}`);
    assert.doesNotMatch([...env.values()].join('\n'), /must-not-leak|must_not_leak/, `${who}: no secret under another name`);
    assert.ok(env.get('PATH'), `${who} has PATH`);
    assert.equal(env.get('LANG'), 'C.UTF-8', `${who} has the locale`);
    assert.equal(env.get('NODE_ENV'), 'production', `${who} has the app's env`);
    assert.equal(env.get('CAFETERIA_DB'), 'postgres://localhost/cafeteria');
    assert.equal(env.get('DUET_COLOR'), 'blue');
  }
  assert.match(seen.app.get('PORT') ?? '', /^\d+$/);
  assert.equal(seen.install.get('npm_config_include'), 'dev', 'the install asks npm for the devDependencies');
});

test('inheritedEnv passes what programs need to run and reach the network, and nothing else', () => {
  const env = inheritedEnv({
    PATH: '/usr/bin',
    HOME: '/var/lib/duet',
    LC_ALL: 'C',
    https_proxy: 'http://proxy:3128',
    npm_config_registry: 'https://npm.example',
    DUET_API_TOKEN: 'x',
    DUET_CONFIG: '/etc/duet/duet.yml',
    XDG_RUNTIME_DIR: '/run/user/1',
    CREDENTIALS_DIRECTORY: '/run/credentials/duet.service',
  });
  assert.deepEqual(env, { PATH: '/usr/bin', HOME: '/var/lib/duet', LC_ALL: 'C', https_proxy: 'http://proxy:3128', npm_config_registry: 'https://npm.example' });
});
