import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inheritedEnv } from '../../src/util/child-env.js';
import { setupDuet } from '../support/duet.js';

/** Set in duet's own environment for the deploy, on top of this test's: none of it is the app's. */
const DUETS_OWN = {
  DUET_WEBHOOK_SECRET: 'whsec-must-not-leak',
  DUET_API_TOKEN: 'api-token-must-not-leak',
  DUET_GITHUB_TOKEN: 'ghs_must_not_leak',
  DUET_GITHUB_TOKEN_FILE: '/etc/duet/credentials/github-token',
  DUET_CONFIG: '/etc/duet/duet.yml',
  CREDENTIALS_DIRECTORY: '/run/credentials/duet.service',
  // duet's own, not the app's: the app's NODE_ENV is the one its `env` in duet.yml sets.
  NODE_ENV: 'development',
  AWS_SECRET_ACCESS_KEY: 'an-unrelated-secret-of-the-operator-shell',
  LANG: 'C.UTF-8',
};

/** What README's security model lets through from duet's environment, written out apart from the code. */
const PASSED_BY_README =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_.*|TZ|TMPDIR|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|https?_proxy|no_proxy|HTTPS?_PROXY|NO_PROXY|npm_config_.*|NPM_CONFIG_.*|COREPACK_.*)$/;
/** Set for them whatever duet's environment holds: by duet (PORT, DUET_COLOR ...) or by `sh` itself. */
const SET_FOR_THEM = new Set(['PORT', 'HOST', 'DUET_COLOR', 'DUET_REVISION', 'DUET_REF', 'PWD', 'OLDPWD', 'SHLVL', '_']);

const parseEnv = (text: string, separator: string): Map<string, string> =>
  new Map(
    text
      .split(separator)
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

test("the app, its install and its build get a built environment: never duet's secrets, its NODE_ENV or anything else of its environment", async (t) => {
  const setup = await setupDuet(t, {
    app: {
      install: "'mkdir -p node_modules && env > install-env.txt'",
      build: "'env > build-env.txt'",
      env: '{ CAFETERIA_DB: "postgres://localhost/cafeteria" }',
    },
  });
  // The duet CLI runs with this test's whole environment (NODE_TEST_CONTEXT, npm_lifecycle_event ...) plus DUETS_OWN.
  await setup.succeed(['deploy', '--ref', 'v1'], DUETS_OWN);
  const duetsEnvironment = { ...process.env, ...DUETS_OWN };
  const pid = Number((await setup.succeed(['pid', 'blue'])).stdout.trim());
  const seen = {
    app: parseEnv(await readFile(`/proc/${pid}/environ`, 'utf8'), '\0'),
    install: parseEnv(await readFile(join(setup.app.paths.checkout.blue, 'install-env.txt'), 'utf8'), '\n'),
    build: parseEnv(await readFile(join(setup.app.paths.checkout.blue, 'build-env.txt'), 'utf8'), '\n'),
  };
  for (const [who, env] of Object.entries(seen)) {
    const leaked = Object.keys(duetsEnvironment).filter((name) => env.has(name) && !PASSED_BY_README.test(name) && !SET_FOR_THEM.has(name));
    assert.deepEqual(leaked, [], `${who} must see none of duet's own environment`);
    assert.ok(!env.has('NODE_ENV'), `${who} must not see duet's NODE_ENV`);
    assert.doesNotMatch([...env.values()].join('\n'), /must-not-leak|must_not_leak/, `${who}: no secret under another name`);
    assert.ok(env.get('PATH'), `${who} has PATH`);
    assert.equal(env.get('LANG'), 'C.UTF-8', `${who} has the locale`);
    assert.equal(env.get('CAFETERIA_DB'), 'postgres://localhost/cafeteria', `${who} has the app's env`);
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
    NODE_ENV: 'development',
    DUET_CONFIG: '/etc/duet/duet.yml',
    XDG_RUNTIME_DIR: '/run/user/1',
    CREDENTIALS_DIRECTORY: '/run/credentials/duet.service',
  });
  assert.deepEqual(env, { PATH: '/usr/bin', HOME: '/var/lib/duet', LC_ALL: 'C', https_proxy: 'http://proxy:3128', npm_config_registry: 'https://npm.example' });
});
