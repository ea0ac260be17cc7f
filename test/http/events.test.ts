import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { parseConfig } from '../../src/config/load.js';
import { decideEvent, WebhookPayloadError, type EventDecision } from '../../src/http/events.js';

// GitHub's own example payloads (@octokit/webhooks-examples): one array of {name, actions, examples}.
type Payload = Record<string, any>;
const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as Array<{ name: string; examples: Payload[] }>;

const REPO = 'inu-appcenter/cafeteria-server';
const COMMIT = '6113728f27ae82c7b1a177c8d03f9e96e0adf246';
const TAG_OBJECT = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';

/** A deep copy of the first example of `event` that `pick` accepts, pointed at `repo`. */
function example(event: string, pick: (p: Payload) => boolean = () => true, repo = REPO): Payload {
  const found = examples.find((e) => e.name === event)?.examples.find(pick);
  assert.ok(found, `no ${event} example`);
  const copy = structuredClone(found);
  if (copy.repository) copy.repository.full_name = repo;
  return copy;
}

const tagCreated = () => example('push', (p) => p.ref.startsWith('refs/tags/') && p.created);
const tagDeleted = () => example('push', (p) => p.ref.startsWith('refs/tags/') && p.deleted);
const branchCreated = () => example('push', (p) => p.ref.startsWith('refs/heads/') && p.created);
/** No branch-update example exists: a created-branch push with a `before` and created: false. */
function branchUpdated(branch: string): Payload {
  const p = branchCreated();
  p.ref = `refs/heads/${branch}`;
  p.before = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';
  p.created = false;
  return p;
}
const release = (action: string, edit: (r: Payload) => void = () => {}) => {
  const p = example('release', (r) => r.action === action);
  edit(p.release);
  return p;
};

const config = parseConfig(
  `
state_dir: /tmp/duet-events-test
apps:
  cafeteria:
    repo: Inu-AppCenter/Cafeteria-Server
    clone_url: /nonexistent/cafeteria.git
    deploy_on: { branches: [main], tags: ["v*", "simple-*"], releases: true }
  staging:
    repo: inu-appcenter/cafeteria-server
    clone_url: /nonexistent/cafeteria.git
    listen: 8081
    ports: { blue: 20301, green: 20302 }
    deploy_on: { branches: [main, develop] }
  beta:
    repo: inu-appcenter/beta
    clone_url: /nonexistent/beta.git
    listen: 8082
    ports: { blue: 20401, green: 20402 }
    deploy_on: { branches: [], releases: true, prereleases: true }
  quiet:
    repo: inu-appcenter/quiet
    clone_url: /nonexistent/quiet.git
    listen: 8083
    ports: { blue: 20501, green: 20502 }
`,
  'test.yml',
);

function ignoredReason(decision: EventDecision): string {
  assert.ok('ignored' in decision, `expected ignored, got ${JSON.stringify(decision)}`);
  return decision.ignored;
}

test('ping is a pong, whatever its payload', () => {
  assert.deepEqual(decideEvent(config, 'ping', example('ping')), { pong: true });
  assert.deepEqual(
    decideEvent(
      config,
      'ping',
      example('ping', (p) => !p.repository),
    ),
    { pong: true },
  );
});

test('events duet does not deploy on are ignored, naming the event', () => {
  for (const name of ['issues', 'pull_request', 'workflow_run']) {
    assert.match(ignoredReason(decideEvent(config, name, example(name))), new RegExp(`"${name}" does not deploy`));
  }
  assert.match(ignoredReason(decideEvent(config, 'no_such_event', {})), /"no_such_event"/);
});

test('a pushed tag matching deploy_on.tags deploys the full ref and the head commit', () => {
  assert.deepEqual(decideEvent(config, 'push', tagCreated()), {
    trigger: {
      app: 'cafeteria',
      kind: 'deploy',
      ref: 'refs/tags/simple-tag',
      sha: COMMIT,
      fromSha: null,
      source: 'push',
      requestedBy: 'push by Codertocat',
    },
  });
});

test('an annotated tag: `after` is the tag object, the commit is head_commit.id', () => {
  const p = tagCreated();
  p.ref = 'refs/tags/v2.0.0';
  p.after = TAG_OBJECT;
  const decision = decideEvent(config, 'push', p);
  assert.ok('trigger' in decision);
  assert.equal(decision.trigger.sha, COMMIT);
  assert.equal(decision.trigger.ref, 'refs/tags/v2.0.0');
});

test('without head_commit the sha is left to the queue', () => {
  const p = tagCreated();
  p.head_commit = null;
  const decision = decideEvent(config, 'push', p);
  assert.ok('trigger' in decision);
  assert.equal(decision.trigger.sha, null);
});

test('a tag matching no glob is ignored with the globs', () => {
  const p = tagCreated();
  p.ref = 'refs/tags/release-1';
  // Both apps of the repo are asked; the reason names both.
  assert.equal(
    ignoredReason(decideEvent(config, 'push', p)),
    'tag release-1 matches none of deploy_on.tags of cafeteria (v*, simple-*); ' + 'tag release-1 matches none of deploy_on.tags of staging (none configured)',
  );
  p.ref = 'refs/tags/v2/hotfix'; // `*` does not cross "/"
  assert.match(ignoredReason(decideEvent(config, 'push', p)), /matches none/);
});

test('deleting a tag or a branch is ignored', () => {
  assert.match(ignoredReason(decideEvent(config, 'push', tagDeleted())), /push deleted "refs\/tags\/simple-tag"/);
  const p = tagDeleted();
  p.ref = 'refs/heads/main';
  assert.match(ignoredReason(decideEvent(config, 'push', p)), /deleted/);
});

test('a created branch deploys only when it is in deploy_on.branches', () => {
  // The example creates "master"; the apps deploy main (and develop).
  assert.equal(
    ignoredReason(decideEvent(config, 'push', branchCreated())),
    'branch master is not in deploy_on.branches of cafeteria; branch master is not in deploy_on.branches of staging',
  );
  const p = branchCreated();
  p.ref = 'refs/heads/main';
  const decision = decideEvent(config, 'push', p);
  assert.ok('trigger' in decision);
  assert.equal(decision.trigger.ref, 'refs/heads/main');
  assert.equal(decision.trigger.sha, COMMIT);
});

test('a branch update deploys; with two apps on one repo the first whose rules match wins', () => {
  const main = decideEvent(config, 'push', branchUpdated('main'));
  assert.ok('trigger' in main);
  assert.equal(main.trigger.app, 'cafeteria');
  const develop = decideEvent(config, 'push', branchUpdated('develop'));
  assert.ok('trigger' in develop);
  assert.equal(develop.trigger.app, 'staging');
  assert.equal(develop.trigger.ref, 'refs/heads/develop');
  assert.match(ignoredReason(decideEvent(config, 'push', branchUpdated('feature/x'))), /branch feature\/x is not in deploy_on.branches of cafeteria/);
});

test('the repository matches case-insensitively; an unknown one is named', () => {
  const p = branchUpdated('main');
  p.repository.full_name = 'INU-APPCENTER/CAFETERIA-SERVER';
  assert.ok('trigger' in decideEvent(config, 'push', p));
  p.repository.full_name = 'someone/else';
  assert.equal(ignoredReason(decideEvent(config, 'push', p)), 'no app in test.yml has repo "someone/else"');
  // An app without `repo` never matches a webhook.
  assert.match(
    ignoredReason(
      decideEvent(
        config,
        'push',
        example('push', () => true, 'Codertocat/Hello-World'),
      ),
    ),
    /no app/,
  );
});

test('refs that are not acceptable ref names are ignored with the reason, never triggered', () => {
  for (const [ref, why] of [
    ['refs/tags/v1;rm -rf', /contains a space|";"/],
    ['refs/tags/v$(reboot)', /"\$"/],
    ['refs/heads/main`id`', /"`"/],
    ['refs/tags/v1..2', /"\.\."/],
    ['refs/tags/v1\nx', /control character/],
  ] as const) {
    const p = tagCreated();
    p.ref = ref;
    assert.match(ignoredReason(decideEvent(config, 'push', p)), why, ref);
  }
  const p = tagCreated();
  p.ref = 'refs/notes/commits';
  assert.equal(ignoredReason(decideEvent(config, 'push', p)), 'ref refs/notes/commits is neither a branch nor a tag');
});

test('a published release deploys its tag, with no sha and never target_commitish', () => {
  const p = release('published', (r) => {
    r.target_commitish = 'some-branch';
  });
  assert.deepEqual(decideEvent(config, 'release', p), {
    trigger: {
      app: 'cafeteria',
      kind: 'deploy',
      ref: 'refs/tags/0.0.1',
      sha: null,
      fromSha: null,
      source: 'release',
      requestedBy: 'release 0.0.1 by Codertocat',
    },
  });
});

test('release actions other than published are ignored', () => {
  for (const action of ['created', 'edited', 'released', 'prereleased', 'deleted']) {
    assert.match(ignoredReason(decideEvent(config, 'release', release(action))), new RegExp(`"${action}" does not deploy`));
  }
  const unpublished = release('published'); // no example of it
  unpublished.action = 'unpublished';
  assert.match(ignoredReason(decideEvent(config, 'release', unpublished)), /"unpublished" does not deploy/);
  // A draft is created, not published.
  assert.match(
    ignoredReason(
      decideEvent(
        config,
        'release',
        release('created', (r) => (r.draft = true)),
      ),
    ),
    /"created"/,
  );
  assert.match(
    ignoredReason(
      decideEvent(
        config,
        'release',
        release('published', (r) => (r.draft = true)),
      ),
    ),
    /is a draft/,
  );
});

test('a prerelease deploys only with deploy_on.prereleases', () => {
  const pre = (repo: string) => {
    const p = release('published', (r) => (r.prerelease = true));
    p.repository.full_name = repo;
    return p;
  };
  assert.equal(
    ignoredReason(decideEvent(config, 'release', pre(REPO))),
    'release 0.0.1 is a prerelease and deploy_on.prereleases is off for cafeteria; deploy_on.releases is off for staging',
  );
  const beta = decideEvent(config, 'release', pre('inu-appcenter/beta'));
  assert.ok('trigger' in beta);
  assert.equal(beta.trigger.app, 'beta');
});

test('releases need deploy_on.releases', () => {
  const p = release('published');
  p.repository.full_name = 'inu-appcenter/quiet';
  assert.equal(ignoredReason(decideEvent(config, 'release', p)), 'deploy_on.releases is off for quiet');
});

test('a release tag that is not an acceptable ref name is ignored', () => {
  for (const tag of ['v1;rm -rf /', '-v1', '$(id)', '']) {
    const decision = decideEvent(
      config,
      'release',
      release('published', (r) => (r.tag_name = tag)),
    );
    assert.match(ignoredReason(decision), /is not acceptable/, tag);
  }
});

test('a payload without the fields duet reads is a WebhookPayloadError', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['push', {}, /push payload: ref:/],
    ['push', null, /top level/],
    ['push', 'text', /top level/],
    ['push', { ...tagCreated(), repository: undefined }, /repository/],
    ['push', { ...tagCreated(), deleted: 'no' }, /deleted/],
    ['push', { ...tagCreated(), head_commit: { id: 'not-a-sha' } }, /head_commit\.id: a full commit id/],
    ['release', { ...release('published'), release: { tag_name: 'v1' } }, /release\.draft/],
    ['release', { ...release('published'), action: 7 }, /action/],
  ];
  for (const [event, payload, message] of cases) {
    assert.throws(
      () => decideEvent(config, event, payload),
      (error: unknown) => {
        assert.ok(error instanceof WebhookPayloadError);
        assert.match(error.message, message);
        return true;
      },
    );
  }
});
