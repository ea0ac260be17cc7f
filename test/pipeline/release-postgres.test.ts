import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { appConfPath } from '../../src/switch/nginx-conf.js';
import { identify, isSameProcessAlive } from '../../src/instance/process-identity.js';
import { pollUntil } from '../../src/util/poll.js';
import { setupDuet, type DuetSetup } from '../support/duet.js';
import { registryApp } from '../support/git-repo.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { startLoad } from '../support/load.js';
import { freePort } from '../support/ports.js';
import { startPostgres, type Postgres } from '../support/postgres.js';
import { API_TOKEN, getJson, startServe } from '../support/serve.js';
import { tempDir } from '../support/tmp.js';
import type { TestContext } from 'node:test';
import { journalRuns } from '../support/journal.js';

/**
 * The release step with a real database and a real migration tool: PostgreSQL (Debian's server,
 * a cluster of the test's own) and knex with pg from the npm registry
 * (test/fixtures/registry-apps/knex-pg), whose release command runs knex's migrations.
 */

const NICKNAME = `exports.up = (knex) => knex.schema.alterTable('members', (table) => table.text('nickname').notNullable().defaultTo('-'));
exports.down = (knex) => knex.schema.alterTable('members', (table) => table.dropColumn('nickname'));
`;
// Half way: the orders table is made, then a statement fails; knex's transaction undoes both.
// The contract after the expand: v2 reads nickname, so v4 must not overlap with it.
const DROP_NICKNAME = `exports.up = (knex) => knex.schema.alterTable('members', (table) => table.dropColumn('nickname'));
exports.down = (knex) => knex.schema.alterTable('members', (table) => table.text('nickname'));
`;
const BROKEN = `exports.up = async (knex) => {
  await knex.schema.createTable('orders', (table) => table.increments('id'));
  await knex.raw('ALTER TABLE members ADD COLUMN nickname text');
};
exports.down = () => {};
`;

interface Setup {
  setup: DuetSetup;
  db: Postgres;
  control: string;
  github: GitHubServer;
  port: number;
}

async function withDatabase(t: TestContext): Promise<Setup> {
  const db = await startPostgres(t);
  await db.sql('postgres', 'CREATE DATABASE cafeteria');
  const control = await tempDir(t, 'duet-control');
  const github = await startGitHubServer(t, { prefix: '/api/v3' });
  const port = await freePort();
  const setup = await setupDuet(t, {
    app: {
      install: "'npm ci --no-audit --no-fund'",
      release: "'node migrate.js'",
      env: `{ DATABASE_URL: "${db.url('cafeteria')}", CONTROL_DIR: "${control}" }`,
    },
    tags: {
      v1: await registryApp('knex-pg'),
      v2: { VERSION: 'v2\n', COLUMNS: 'name, nickname\n', 'migrations/002_nickname.js': NICKNAME },
      v3: { VERSION: 'v3\n', 'migrations/003_orders.js': BROKEN },
    },
    top: {
      server: `{ listen: "127.0.0.1:${port}", public_url: "https://deploy.example.com" }`,
      github: `{ api_url: "${github.url}" }`,
    },
  });
  return { setup, db, control, github, port };
}

const columns = (db: Postgres) =>
  db.sql('cafeteria', "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'members'");
const migrations = (db: Postgres) => db.sql('cafeteria', "SELECT string_agg(name, ',' ORDER BY id) FROM knex_migrations");

test(
  'v2 adds a column in its release while v1 serves under load (0 failed requests); v3 fails half way through its release: v2 serves on, the database is as v2 left it, GitHub is told the release failed; a breaking v4 drops the column: no fallback, v2 stopped, no rollback to it',
  { timeout: 240_000 },
  async (t) => {
    const { setup, db, github, port } = await withDatabase(t);
    await setup.succeed(['deploy', '--ref', 'v1']);
    assert.match((await setup.get('/')).body, /cafeteria v1<\/h1><p>ada, grace/);

    const load = startLoad(setup.listenPort, { concurrency: 4, keepAlive: false });
    let report;
    try {
      await setup.succeed(['deploy', '--ref', 'v2']);
    } finally {
      report = await load.stop();
    }
    assert.equal(report.errors + report.non2xx, 0, `no request failed: ${JSON.stringify(report)}`);
    assert.ok((report.versions.v1 ?? 0) > 0 && (report.versions.v2 ?? 0) > 0, `v1 served, then v2: ${JSON.stringify(report.versions)}`);
    assert.match((await setup.get('/')).body, /cafeteria v2<\/h1><p>ada -, grace -/);
    assert.equal(await columns(db), 'id,name,nickname');

    const serve = await startServe(t, setup.configPath, port, { DUET_GITHUB_TOKEN: 'ghs_test' });
    const v3 = await setup.repo.revParse('v3^{commit}');
    const asked = await fetch(`${serve.url}/apps/cafeteria/deploy`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ref: 'v3' }),
    });
    assert.equal(asked.status, 202);
    const { deploy: id } = (await asked.json()) as { deploy: string };
    const ended = await pollUntil(
      async () => {
        const { body } = await getJson(`${serve.url}/deploys/${id}`);
        // Settled: the summary comes with the trigger's settled line, after the run's end.
        return ['failed', 'succeeded', 'errored'].includes(body?.state) && body?.summary ? body : undefined;
      },
      { timeoutMs: 90_000, maxIntervalMs: 200 },
    );
    assert.equal(ended?.state, 'failed', JSON.stringify(ended));
    assert.equal(ended.steps.at(-1).name, 'release');
    assert.match(ended.summary, /release/);
    assert.match((await setup.get('/')).body, /cafeteria v2/, 'v2 serves on');
    assert.equal(await db.sql('cafeteria', "SELECT to_regclass('orders') IS NULL"), 't', 'the half-made table was rolled back');
    assert.equal(await columns(db), 'id,name,nickname');
    assert.equal(await migrations(db), '001_members.js,002_nickname.js');
    const log = (await setup.succeed(['logs', id])).stdout;
    assert.match(log, /migration failed: .*column "nickname" of relation "members" already exists/);

    await github.waitFor((requests) => requests.some((r) => r.path.endsWith(`/statuses/${v3}`) && (r.body as { state?: string }).state === 'failure'));
    const failure = github.matching(new RegExp(`/statuses/${v3}$`), 'POST').at(-1)!.body as { state: string; description: string };
    assert.equal(failure.state, 'failure');
    assert.match(failure.description, /release/, 'the status names the step');
    await serve.stop();

    // v4 drops the column v2 reads: a breaking release, as its commit says.
    await setup.repo.commit(
      { VERSION: 'v4\n', COLUMNS: 'name\n', 'migrations/003_orders.js': null, 'migrations/004_drop_nickname.js': DROP_NICKNAME },
      'v4: drop members.nickname\n\nDuet-Breaking: true',
    );
    await setup.repo.tag('v4');
    await setup.succeed(['deploy', '--ref', 'v4']);
    assert.match((await setup.get('/')).body, /cafeteria v4<\/h1><p>ada, grace/);
    assert.equal(await columns(db), 'id,name');
    assert.doesNotMatch(await readFile(appConfPath(setup.app, setup.config), 'utf8'), /@duet_fallback/, 'nginx has no fallback to v2');
    assert.equal((await setup.duet(['pid', 'green'])).code, 1, 'v2 was stopped after the drain');
    const refused = await setup.duet(['rollback']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /from before the breaking release/);
    assert.match((await setup.get('/')).body, /cafeteria v4/);
  },
);

test(
  'duet killed -9 during the release: the re-run stops what the release left running, runs the release again and converges',
  { timeout: 240_000 },
  async (t) => {
    const { setup, db, control } = await withDatabase(t);
    await setup.succeed(['deploy', '--ref', 'v1']);
    await writeFile(join(control, 'release-hold'), '');
    const running = setup.start(['deploy', '--ref', 'v2']);
    const held = join(control, 'release-held');
    const releasePid = await pollUntil(async () => Number((await readFile(held, 'utf8').catch(() => '')).trim()) || undefined, {
      timeoutMs: 90_000,
      maxIntervalMs: 100,
    });
    assert.ok(releasePid, `the release started:\n${running.output()}`);
    const holder = JSON.parse(await readFile(setup.app.paths.lock, 'utf8')) as { pid: number };
    process.kill(holder.pid, 'SIGKILL');
    assert.notEqual((await running.done).code, 0);
    const leftover = await identify(releasePid);
    assert.ok(leftover && (await isSameProcessAlive(leftover)), 'the release outlived duet');
    assert.match((await setup.get('/')).body, /cafeteria v1/, 'v1 serves on');

    await setup.succeed(['deploy', '--ref', 'v2']);
    assert.equal(await isSameProcessAlive(leftover), false, 'the re-run stopped the release the killed duet left');
    assert.match((await setup.get('/')).body, /cafeteria v2<\/h1><p>ada -, grace -/);
    assert.equal(await columns(db), 'id,name,nickname');
    assert.equal(await migrations(db), '001_members.js,002_nickname.js', 'each migration ran once');
    const [interrupted, converged] = (await journalRuns(setup.app.paths.journal)).slice(-2);
    assert.equal(interrupted?.outcome, 'interrupted');
    assert.equal(interrupted?.steps.at(-1)?.name, 'release', 'killed during the release');
    assert.equal(converged?.outcome, 'success');
    assert.equal(converged?.steps.find((s) => s.name === 'release')?.status, 'done', 'the release ran again');
    assert.match((await setup.succeed(['logs', converged.id])).stdout, /stopped `node migrate.js` .* left running/);
  },
);
