import { otherColor, type Color } from '../config/schema.js';
import { shortRef, type ReleaseView } from '../pipeline/release-pick.js';
import type { AppStatus, ColorStatus } from '../pipeline/status.js';
import type { Link } from './dashboard-pages.js';
import { html, type Html } from './html.js';

/**
 * The pages of the dashboard's buttons. A button on the index is a GET form to a confirmation
 * page, which says what will happen; only that page's POST, carrying the session's CSRF token,
 * acts. No script: plain forms, so the strict CSP stays as it is.
 */

/** Where an app's action answers, GET (the confirmation) and POST (the act). */
const actionPath = (app: string, action: 'redeploy' | 'rollback'): string => `/apps/${encodeURIComponent(app)}/actions/${action}`;

function hidden(fields: Record<string, string | null>): Html[] {
  return Object.entries(fields)
    .filter((entry): entry is [string, string] => entry[1] !== null)
    .map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`);
}

function commitOf(c: ColorStatus): Html {
  return c.revision ? html`<code>${c.revision.slice(0, 7)}</code>${c.ref ? html` <code>${c.ref}</code>` : ''}` : html`<span class="muted">nothing</span>`;
}

/** The warm color a rollback goes back to: the idle one, when it holds a commit. */
function rollbackTarget(status: AppStatus): { live: Color; from: string; target: Color } | undefined {
  const live = status.enabled;
  const from = live ? status.colors[live].revision : null;
  if (!live || !from || !status.colors[otherColor(live)].revision) return undefined;
  return { live, from, target: otherColor(live) };
}

/** The index's buttons of one app, for a signed-in session. */
export function actionButtons(app: string, status: AppStatus, link: Link): Html {
  const live = status.enabled ? status.colors[status.enabled] : undefined;
  const back = rollbackTarget(status);
  // The rollback names the commit it undoes.
  const rollback = back
    ? html`<form class="inline" method="get" action="${link(actionPath(app, 'rollback'))}">${hidden({ from: back.from })}<button type="submit">Roll back</button></form>`
    : '';
  return html`<div class="actions"><form class="inline" method="get" action="${link(actionPath(app, 'redeploy'))}">${hidden({ ref: live?.ref ?? null })}<button type="submit">${live ? 'Redeploy' : 'Deploy'}</button></form>${rollback}</div>`;
}

/** The kept releases of an app, each but the live one with its Roll back (`to`) button. */
export function releasesTable(app: string, status: AppStatus, releases: ReleaseView[], link: Link): Html {
  if (releases.length === 0) return html``;
  const liveSha = status.enabled ? status.colors[status.enabled].revision : null;
  const rows = releases.map((r) => {
    const button =
      liveSha && !r.live && r.kept
        ? html`<form class="inline" method="get" action="${link(actionPath(app, 'rollback'))}">${hidden({ from: liveSha, to: r.sha })}<button type="submit">Roll back to this</button></form>`
        : r.live
          ? html`<span class="muted">live</span>`
          : '';
    return html`<tr><td><code>${r.sha.slice(0, 7)}</code> <code>${shortRef(r.ref)}</code></td><td class="when">${r.deployedAt}</td><td>${r.bad ? html`<span class="bad">left by a rollback</span>` : ''}</td><td>${button}</td></tr>`;
  });
  return html`<h3>Kept releases</h3><table class="releases"><thead><tr><th>release</th><th>went live</th><th></th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

function confirmForm(action: string, fields: Record<string, string | null>, label: string, cancel: string): Html {
  return html`<form method="post" action="${action}">${hidden(fields)}<button class="primary" type="submit">${label}</button> <a href="${cancel}">Cancel</a></form>`;
}

interface RedeployPlan {
  app: string;
  status: AppStatus;
  /** What the form asked for; null: the default branch, `asked` names it. */
  ref: string | null;
  asked: string;
  /** The commit the ref names now, or why it could not be told. */
  resolved: { sha: string; ref: string } | { error: string };
  csrf: string;
}

export function redeployConfirmBody(plan: RedeployPlan, link: Link): Html {
  const { status, resolved } = plan;
  const live = status.enabled;
  const liveSha = live ? status.colors[live].revision : null;
  const idle = live ? otherColor(live) : 'blue';
  const verb = live ? 'Redeploy' : 'Deploy';
  const becomes =
    'error' in resolved
      ? html`<span class="bad">${plan.asked} cannot be resolved now: ${resolved.error}</span>`
      : html`<code>${resolved.sha.slice(0, 7)}</code> <code>${resolved.ref}</code>${liveSha === resolved.sha ? html` <span class="muted">(live already: nothing changes unless duet.yml or the env files did)</span>` : ''}`;
  return html`<section class="card"><h2>${verb} ${plan.app}?</h2>
<dl><dt>app</dt><dd>${plan.app}</dd>
<dt>live now</dt><dd>${live ? html`${live} ${commitOf(status.colors[live])}` : html`<span class="muted">nothing</span>`}</dd>
<dt>deploys</dt><dd><code>${plan.asked}</code>${plan.ref === null ? ' (the default branch)' : ''}, resolved again when it runs</dd>
<dt>becomes</dt><dd>${becomes}, on ${idle}</dd></dl>
<p>${idle} is updated, built and started, then nginx switches to it once it is healthy; ${live ?? 'nothing'} stays warm for a rollback.</p>
${confirmForm(link(actionPath(plan.app, 'redeploy')), { csrf: plan.csrf, ref: plan.ref }, verb, link('/'))}</section>`;
}

interface RollbackPlan {
  app: string;
  status: AppStatus;
  /** The commit the form expects live (`from`), checked against the machine. */
  from: string;
  /** A kept release to restore (`to`), checked as the rollback will; undefined: the warm color. */
  release?: ReleaseView;
  csrf: string;
}

export function rollbackConfirmBody(plan: RollbackPlan, link: Link): Html {
  if (plan.release) return releaseConfirmBody({ ...plan, release: plan.release }, link);
  const back = rollbackTarget(plan.status);
  if (!back)
    return html`<section class="card"><h2>Nothing to roll back to</h2><p>${plan.app} has no idle color holding a release.</p><p><a href="${link('/')}">All apps</a></p></section>`;
  const target = plan.status.colors[back.target];
  const start =
    target.state === 'healthy'
      ? 'is running and healthy (warm): nginx switches to it at once'
      : `is ${target.state}: it is started and health-checked, then nginx switches to it`;
  return html`<section class="card"><h2>Roll back ${plan.app}?</h2>
<dl><dt>app</dt><dd>${plan.app}</dd>
<dt>live now</dt><dd>${back.live} ${commitOf(plan.status.colors[back.live])}</dd>
<dt>becomes</dt><dd>${back.target} ${commitOf(target)}</dd></dl>
<p>${back.target} ${start}; nothing is fetched or built. If something else changes what is live first, this rollback changes nothing.</p>
${confirmForm(link(actionPath(plan.app, 'rollback')), { csrf: plan.csrf, from: plan.from }, 'Roll back', link('/'))}</section>`;
}

/** A rollback whose `from` is no longer live: said plainly instead of toggling back. */
export function changedBody(app: string, from: string, live: { color: string; sha: string }, link: Link): Html {
  return html`<section class="card"><h2>Something else changed it first</h2>
<p>You asked to roll back ${app} from <code>${from.slice(0, 7)}</code>, but <code>${live.sha.slice(0, 7)}</code> is live on ${live.color} now: someone deployed or rolled back meanwhile. Nothing was changed.</p>
<p><a href="${link('/')}">Back to the dashboard</a>, to see what is live and decide again.</p></section>`;
}

/** A rollback to a kept release: restored into the idle color, no install, no build. */
function releaseConfirmBody(plan: RollbackPlan & { release: ReleaseView }, link: Link): Html {
  const { status, release } = plan;
  const live = status.enabled!;
  const idle = otherColor(live);
  return html`<section class="card"><h2>Roll back ${plan.app} to a kept release?</h2>
<dl><dt>app</dt><dd>${plan.app}</dd>
<dt>live now</dt><dd>${live} ${commitOf(status.colors[live])}</dd>
<dt>becomes</dt><dd>${idle} <code>${release.sha.slice(0, 7)}</code> <code>${shortRef(release.ref)}</code>, live since ${release.deployedAt} before</dd></dl>
<p>The kept tree of that release goes into ${idle} as it was built (no fetch, no install, no build), then it is started, health-checked and switched to; the release live now is marked as left by a rollback. If something else changes what is live first, this rollback changes nothing.</p>
${confirmForm(link(actionPath(plan.app, 'rollback')), { csrf: plan.csrf, from: plan.from, to: release.sha }, 'Roll back', link('/'))}</section>`;
}
