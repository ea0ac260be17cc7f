import { colors, type Color } from '../config/schema.js';
import type { DeployState } from '../pipeline/deploy-state.js';
import { breakingLine, configChangeText, type AppStatus, type ColorStatus } from '../pipeline/status.js';
import { isDeployId, type StepRecord } from '../pipeline/journal.js';
import { actionButtons, releasesTable } from './action-pages.js';
import type { ReleaseView } from '../pipeline/release-pick.js';
import type { DeployView } from './deploys.js';
import { html, type Html } from './html.js';

/** The dashboard's page bodies. Pure functions of their data, so the router stays about HTTP. */

export interface AppPanel {
  name: string;
  status: AppStatus | { error: string };
  queued: number;
  running: DeployView | undefined;
  deploys: DeployView[];
  /** Signed in: the Redeploy and Roll back buttons. */
  actions?: boolean;
  /** Signed in: the kept releases, each with its Roll back button. */
  releases?: ReleaseView[];
}

/** Builds links relative to wherever the dashboard is mounted. */
export type Link = (path: string) => string;

function formatMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

function formatUptime(startedAt: string | null): string {
  if (!startedAt) return '';
  let s = Math.max(0, Math.floor((Date.now() - Date.parse(startedAt)) / 1000));
  if (!Number.isFinite(s)) return '';
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m ${s - m * 60}s` : `${s}s`;
}

/** "2026-11-25 16:23 UTC": one unambiguous zone for a team reading the page from anywhere. */
function when(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : '';
}

const STATE_CLASS: Record<DeployState, string> = {
  succeeded: 'ok',
  failed: 'bad',
  errored: 'bad',
  interrupted: 'bad',
  running: 'warn',
  watching: 'warn',
  queued: 'muted',
  waiting_for_checks: 'muted',
  superseded: 'muted',
};

function stateBadge(state: DeployState): Html {
  return html`<span class="badge ${STATE_CLASS[state]}">${state}</span>`;
}

const HEALTH_CLASS: Record<ColorStatus['state'], string> = { healthy: 'ok', unhealthy: 'bad', down: 'bad', stopped: 'muted' };

function colorCard(color: Color, c: ColorStatus, enabled: Color | null): Html {
  const health = html`<span class="badge ${HEALTH_CLASS[c.state]}">${c.state}</span>`;
  const trouble =
    c.state === 'healthy' && !c.restarts
      ? ''
      : html`<dt>supervision</dt><dd>${c.restarts ? `${c.restarts} restart${c.restarts === 1 ? '' : 's'}` : ''}${c.downSince ? html` <span class="bad">down since ${when(c.downSince)}</span>` : ''}${c.lastProblem ? html` <span class="muted">last: ${c.lastProblem}</span>` : ''}</dd>`;
  return html`<div class="color c-${color}">
<div class="name">${color} ${enabled === color ? html`<span class="badge live">live</span>` : html`<span class="badge muted">idle</span>`} ${health}</div>
<dl><dt>revision</dt><dd>${c.revision ? html`<code>${c.revision.slice(0, 7)}</code>` : html`<span class="muted">none</span>`}${c.ref ? html` <code>${c.ref}</code>` : ''}</dd>
<dt>uptime</dt><dd>${c.running ? formatUptime(c.startedAt) || 'running' : html`<span class="muted">not running</span>`}</dd>
<dt>endpoint</dt><dd><code>${String(c.port)}</code>${c.pid ? html` <span class="muted">pid ${c.pid}</span>` : ''}</dd>${trouble}${c.configChanged ? html`<dt>config</dt><dd class="warn">${configChangeText(c.configChanged)}</dd>` : ''}</dl>
</div>`;
}

/** A live color that is down, or a failover: what the team must see first. */
function alerts(status: AppStatus, link: Link): Html {
  const live = status.enabled ? status.colors[status.enabled] : undefined;
  const down =
    live && live.state !== 'healthy'
      ? html`<p class="alert bad"><strong>${status.enabled} (live) is ${live.state}</strong>${live.downSince ? ` since ${when(live.downSince)}` : ''}${live.lastProblem ? `: ${live.lastProblem}` : ''}${status.state === 'on-fallback' ? ` — ${status.serving} answers through nginx's fallback` : ''}</p>`
      : '';
  const failover = status.lastFailover
    ? html`<p class="alert warn">Failed over from ${status.lastFailover.from} to ${status.lastFailover.to} at ${when(status.lastFailover.at)}: ${status.lastFailover.reason} · <a href="${link(`/deploys/${status.lastFailover.id}/view`)}">details</a></p>`
    : '';
  const both = status.bothCrashed
    ? html`<p class="alert warn">Both colors crashed at ${when(status.bothCrashed.at)}: ${status.bothCrashed.detail}. A request or the machine, not the version: no failover.</p>`
    : '';
  const tls = status.tls
    ? status.tls.daysLeft === null
      ? html`<p class="alert warn">HTTPS: nginx presents no certificate (tls ${status.tls.mode}).</p>`
      : html`<p class="${status.tls.daysLeft <= 21 ? 'alert bad' : 'muted'}">HTTPS certificate expires in ${status.tls.daysLeft} days (${when(status.tls.expiresAt)}).</p>`
    : '';
  const breaking = status.breaking ? html`<p class="alert warn">Breaking release live: ${breakingLine(status.breaking)}.</p>` : '';
  const unsupervised = status.supervisedBy === null ? html`<p class="muted">Not supervised: duet serve's supervision has not run for this app yet.</p>` : '';
  return html`${down}${both}${failover}${breaking}${tls}${unsupervised}`;
}

function deploysTable(deploys: DeployView[], link: Link): Html {
  if (deploys.length === 0) return html`<p class="muted">No deploys yet.</p>`;
  const rows = deploys.map(
    (
      d,
    ) => html`<tr><td><a href="${link(`/deploys/${d.id}/view`)}">${d.kind} ${d.ref ?? d.resolvedRef ?? (d.kind === 'deploy' ? 'default branch' : '')}</a>${d.sha ? html` <code>${d.sha.slice(0, 7)}</code>` : ''}</td>
<td>${stateBadge(d.state)}</td><td class="num">${formatMs(d.durationMs)}</td><td class="when">${when(d.startedAt ?? d.receivedAt)}${d.to ? ` → ${d.to}` : ''}${d.error ? html` <span class="bad">${d.failedStep ? `${d.failedStep}: ` : ''}${d.error.split('\n')[0]}</span>` : ''}</td></tr>`,
  );
  return html`<table class="deploys"><thead><tr><th>deploy</th><th>result</th><th class="num">took</th><th>when</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function appSection(panel: AppPanel, link: Link): Html {
  const { status } = panel;
  const running = 'error' in status ? undefined : status.deploying;
  const current = panel.running;
  // status.deploying.id is "starting" while the lock is held but nothing is journaled yet.
  const followId = current?.id ?? (running && isDeployId(running.id) ? running.id : undefined);
  return html`<section class="card"><h2>${panel.name}${'error' in status ? '' : status.enabled ? html` <span class="badge b-${status.enabled}">serving ${status.enabled}</span>` : html` <span class="badge muted">not connected</span>`}${panel.queued > 0 ? html` <span class="badge warn">${panel.queued} queued</span>` : ''}</h2>
${'error' in status ? html`<p class="bad">status unavailable: ${status.error}</p>` : html`${alerts(status, link)}<div class="colors">${colors.map((c) => colorCard(c, status.colors[c], status.enabled))}</div>${panel.actions ? html`${actionButtons(panel.name, status, link)}${releasesTable(panel.name, status, panel.releases ?? [], link)}` : ''}`}
${running || current ? html`<div class="running"><strong>Deploying</strong> ${current?.ref ?? running?.ref ?? ''} — step <code>${running?.step ?? current?.steps.at(-1)?.name ?? 'starting'}</code>${followId ? html` · <a href="${link(`/deploys/${followId}/view`)}">follow the log</a>` : ''}</div>` : ''}
<h3>Recent deploys</h3>${deploysTable(panel.deploys, link)}</section>`;
}

export function indexBody(panels: AppPanel[], link: Link): Html {
  return html`${panels.map((p) => appSection(p, link))}`;
}

function stepsTable(steps: StepRecord[]): Html {
  if (steps.length === 0) return html`<p class="muted">No steps yet.</p>`;
  const cls: Record<string, string> = { done: 'ok', skipped: 'muted', failed: 'bad', started: 'warn' };
  return html`<table><thead><tr><th>step</th><th>status</th><th class="num">took</th><th>detail</th></tr></thead><tbody>${steps.map(
    (s) =>
      html`<tr><td><code>${s.name}</code></td><td><span class="badge ${cls[s.status] ?? 'muted'}">${s.status}</span></td><td class="num">${formatMs(s.ms)}</td><td>${s.detail ?? ''}</td></tr>`,
  )}</tbody></table>`;
}

export function deployBody(d: DeployView, log: { text: string; truncated: boolean } | undefined, link: Link): Html {
  const facts: Array<[string, Html | string | null]> = [
    ['app', d.app],
    ['ref', d.ref ?? (d.kind === 'deploy' ? 'default branch' : null)],
    ['commit', d.sha ? html`<code>${d.sha}</code>` : null],
    ['colors', d.to ? (d.from ? `${d.from} → ${d.to}` : `→ ${d.to}`) : null],
    ['requested by', d.requestedBy ?? d.source],
    ['started', when(d.startedAt ?? d.receivedAt) || null],
    ['took', formatMs(d.durationMs) || null],
    ['summary', d.summary],
    ['superseded by', d.supersededBy ? html`<a href="${link(`/deploys/${d.supersededBy}/view`)}">${d.supersededBy}</a>` : null],
    ['error', d.error ? html`<span class="bad">${d.failedStep ? `${d.failedStep}: ` : ''}${d.error}</span>` : null],
  ];
  return html`<section class="card"><h2>${d.kind} <code>${d.id}</code> ${stateBadge(d.state)}</h2>
<dl>${facts.filter(([, v]) => v !== null && v !== '').map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
<h3>Steps</h3>${d.compacted ? html`<p class="muted">Compacted: this summary is what the journal keeps of an older deploy; its steps and its log were removed.</p>` : stepsTable(d.steps)}
<h3>Log</h3>${log ? html`${log.truncated ? html`<p class="muted">Showing the end of the log. <a href="${link(`/deploys/${d.id}/log.txt`)}">Full log</a></p>` : ''}<pre>${log.text}</pre>` : html`<p class="muted">${d.state === 'queued' ? 'Waiting for the deploy to start.' : 'No log.'}</p>`}
<p><a href="${link(`/deploys/${d.id}/log.txt`)}">Raw log</a> · <a href="${link('/')}">All apps</a></p></section>`;
}

export function loginBody(action: string, error: string | undefined): Html {
  return html`<section class="card login"><h2>Sign in</h2>
${error ? html`<p class="error">${error}</p>` : ''}
<form method="post" action="${action}"><label for="token">API token (DUET_API_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button class="primary" type="submit">Sign in</button></form></section>`;
}

/** A card with a heading and a line: the pages that only say why there is nothing to show. */
export function noticeBody(heading: string, text?: Html | string, cardClass = 'card'): Html {
  return html`<section class="${cardClass}"><h2>${heading}</h2>${text === undefined ? '' : html`<p>${text}</p>`}</section>`;
}
