import picomatch from 'picomatch';
import { z } from 'zod';
import type { AppConfig, Config } from '../config/load.js';
import { InvalidInputError } from '../errors.js';
import { refNameProblem, shownRef } from '../instance/git-ref.js';
import type { TriggerRequest } from '../pipeline/trigger.js';

/**
 * What a GitHub delivery means for duet: a deploy to queue, a reason it means nothing, or a ping.
 * Pure: no I/O, so every rule of `deploy_on` is testable with GitHub's example payloads alone.
 *
 * Several apps may name the same repo (say, staging and production of one service): the first app
 * in the file whose `deploy_on` matches gets the deploy, later ones are not considered. Give each
 * app distinct branches or tags to route one push to exactly one of them.
 */

/** wake: the checks or statuses of a commit changed; a deploy waiting for its CI asks GitHub at once. */
export type EventDecision = { trigger: Omit<TriggerRequest, 'deliveryId'> } | { wake: { repo: string; sha: string } } | { ignored: string } | { pong: true };

/** The payload lacks a field duet reads, or has it with the wrong type: the router answers 400. */
export class WebhookPayloadError extends InvalidInputError {
  constructor(message: string) {
    super(message, {
      step: 'webhook',
      hint: 'duet expects the payloads GitHub sends; check what sent this delivery',
    });
  }
}

/** The events that can deploy; anything else is acknowledged and ignored. */
const DEPLOY_EVENTS = ['push', 'release'] as const;

// Only the fields read below. zod objects drop unknown keys, so GitHub may add fields freely.
const repository = z.object({ full_name: z.string().min(1).max(200) });
const sender = z.object({ login: z.string().min(1).max(100) }).nullish();
const objectId = z.string().regex(/^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/, 'a full commit id');

// Ref and tag names are plain strings here on purpose: a hostile name is "ignored" with the
// reason refNameProblem gives (a 202 GitHub shows), not a 400 for a well-formed payload.
const pushPayload = z.object({
  ref: z.string(),
  deleted: z.boolean(),
  head_commit: z.object({ id: objectId }).nullish(),
  repository,
  sender,
});

/** What CI says of a commit (deploy_on.wait_for_checks): the event, and where its commit is. */
const CHECK_EVENTS: Record<string, z.ZodType<{ repository: { full_name: string }; sha: string; context?: string }>> = {
  check_run: z.object({ check_run: z.object({ head_sha: objectId }), repository }).transform((e) => ({ ...e, sha: e.check_run.head_sha })),
  check_suite: z.object({ check_suite: z.object({ head_sha: objectId }), repository }).transform((e) => ({ ...e, sha: e.check_suite.head_sha })),
  workflow_run: z.object({ workflow_run: z.object({ head_sha: objectId }), repository }).transform((e) => ({ ...e, sha: e.workflow_run.head_sha })),
  status: z.object({ sha: objectId, context: z.string().max(500), repository }),
};

const releasePayload = z.object({
  action: z.string(),
  release: z.object({ tag_name: z.string(), draft: z.boolean(), prerelease: z.boolean() }),
  repository,
  sender,
});

export function decideEvent(config: Config, eventName: string, payload: unknown): EventDecision {
  switch (eventName) {
    case 'ping':
      return { pong: true };
    case 'push':
      return decidePush(config, parse(pushPayload, eventName, payload));
    case 'release':
      return decideRelease(config, parse(releasePayload, eventName, payload));
    default:
      if (CHECK_EVENTS[eventName]) return decideChecks(config, eventName, parse(CHECK_EVENTS[eventName], eventName, payload));
      return { ignored: `event ${shown(eventName)} does not deploy (duet deploys on ${DEPLOY_EVENTS.join(' and ')})` };
  }
}

function decidePush(config: Config, push: z.infer<typeof pushPayload>): EventDecision {
  const apps = appsForRepo(config, push.repository.full_name);
  if (apps.length === 0) return { ignored: noAppFor(config, push.repository.full_name) };
  if (push.deleted) return { ignored: `push deleted ${shown(push.ref)}; deletions do not deploy` };
  const problem = refNameProblem(push.ref);
  if (problem !== undefined) return { ignored: `ref ${shown(push.ref)} is not acceptable: ${problem}` };

  let matches: (app: AppConfig) => string | undefined;
  if (push.ref.startsWith('refs/heads/')) {
    const branch = push.ref.slice('refs/heads/'.length);
    matches = (app) => (app.deploy_on.branches.includes(branch) ? undefined : `branch ${branch} is not in deploy_on.branches of ${app.name}`);
  } else if (push.ref.startsWith('refs/tags/')) {
    const tag = push.ref.slice('refs/tags/'.length);
    // picomatch: `*` does not cross "/", so "v*" matches v2 but not v2/hotfix (use "v**" for that).
    matches = (app) =>
      app.deploy_on.tags.length > 0 && picomatch(app.deploy_on.tags)(tag)
        ? undefined
        : `tag ${tag} matches none of deploy_on.tags of ${app.name}` +
          (app.deploy_on.tags.length === 0 ? ' (none configured)' : ` (${app.deploy_on.tags.join(', ')})`);
  } else {
    return { ignored: `ref ${push.ref} is neither a branch nor a tag` };
  }

  return firstMatch(apps, matches, (app) => ({
    app: app.name,
    kind: 'deploy',
    ref: push.ref,
    // For an annotated tag `after` is the tag object; head_commit.id is the commit it points at.
    sha: push.head_commit?.id ?? null,
    fromSha: null,
    source: 'push',
    requestedBy: push.sender ? `push by ${push.sender.login}` : 'push',
  }));
}

function decideRelease(config: Config, event: z.infer<typeof releasePayload>): EventDecision {
  const apps = appsForRepo(config, event.repository.full_name);
  if (apps.length === 0) return { ignored: noAppFor(config, event.repository.full_name) };
  const tag = event.release.tag_name;
  // Publishing fires created, published and (for a full release) released: deploy on one of them.
  if (event.action !== 'published') {
    return { ignored: `release action ${shown(event.action)} does not deploy (only "published" does)` };
  }
  if (event.release.draft) return { ignored: `release ${shown(tag)} is a draft` };
  const ref = `refs/tags/${tag}`;
  const problem = refNameProblem(tag) ?? refNameProblem(ref);
  if (problem !== undefined) return { ignored: `release tag ${shown(tag)} is not acceptable: ${problem}` };

  const matches = (app: AppConfig): string | undefined => {
    if (!app.deploy_on.releases) return `deploy_on.releases is off for ${app.name}`;
    if (event.release.prerelease && !app.deploy_on.prereleases) {
      return `release ${tag} is a prerelease and deploy_on.prereleases is off for ${app.name}`;
    }
    return undefined;
  };
  // No sha: target_commitish names a branch when the tag already exists; the queue resolves the tag.
  return firstMatch(apps, matches, (app) => ({
    app: app.name,
    kind: 'deploy',
    ref,
    sha: null,
    fromSha: null,
    source: 'release',
    requestedBy: event.sender ? `release ${tag} by ${event.sender.login}` : `release ${tag}`,
  }));
}

/** CI news of a commit: it wakes a deploy waiting for it, when an app of its repo waits for checks at all. */
function decideChecks(config: Config, eventName: string, event: { repository: { full_name: string }; sha: string; context?: string }): EventDecision {
  const repo = event.repository.full_name;
  const gated = appsForRepo(config, repo).filter((app) => app.deploy_on.wait_for_checks);
  if (gated.length === 0) return { ignored: `event ${shown(eventName)} does not deploy, and no app of ${shown(repo)} has deploy_on.wait_for_checks` };
  // duet's own commit status ("Waiting for CI ...") is no news of CI.
  if (gated.some((app) => config.github.status_context.replaceAll('{app}', app.name) === event.context)) return { ignored: "duet's own commit status" };
  return { wake: { repo, sha: event.sha.toLowerCase() } };
}

/** The first app whose rules match gets the trigger; otherwise every app's reason, joined. */
function firstMatch(
  apps: AppConfig[],
  mismatch: (app: AppConfig) => string | undefined,
  trigger: (app: AppConfig) => Omit<TriggerRequest, 'deliveryId'>,
): EventDecision {
  const reasons: string[] = [];
  for (const app of apps) {
    const reason = mismatch(app);
    if (reason === undefined) return { trigger: trigger(app) };
    reasons.push(reason);
  }
  return { ignored: reasons.join('; ') };
}

/** GitHub owner and repository names are case-insensitive. */
function appsForRepo(config: Config, fullName: string): AppConfig[] {
  const wanted = fullName.toLowerCase();
  return [...config.apps.values()].filter((app) => app.repo !== undefined && app.repo.toLowerCase() === wanted);
}

function noAppFor(config: Config, fullName: string): string {
  return `no app in ${config.file} has repo ${shown(fullName)}`;
}

function parse<T>(schema: z.ZodType<T>, eventName: string, payload: unknown): T {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  throw new WebhookPayloadError(`${eventName} payload: ${where}: ${issue?.message ?? 'invalid'}`);
}

/** Names from a payload go into responses and logs: quote them, and cut very long ones. */
function shown(value: string): string {
  return shownRef(value);
}
