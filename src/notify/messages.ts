import type { Config } from '../config/load.js';
import type { NotifyOutcome, NotifyTarget } from '../config/notify.js';
import { otherColor, parseColor } from '../config/schema.js';
import type { Deploy } from '../pipeline/deploy-state.js';

/**
 * What a notification says, as plain JSON: it is written to the outbox as it is, so that one
 * queued before a restart is sent by the next process. The URL it goes to is not in it (a secret,
 * read from url_file when it is sent).
 */
export interface NotifyEvent {
  app: string;
  deployId: string;
  outcome: NotifyOutcome;
  /** The step that failed, when one did. */
  step: string | null;
  commit: string | null;
  ref: string | null;
  colors: { from: string | null; to: string | null };
  durationMs: number | null;
  summary: string;
  /** The deploy's page on the dashboard (server.public_url + /deploys/<id>), when public_url is set. */
  url: string | null;
  /** When it happened (ISO). */
  at: string;
}

/** A deploy's outcome as notify counts it; null for one nobody is told about (superseded, not final). */
export function triggerOutcome(trigger: Deploy): NotifyOutcome | null {
  if (trigger.state === 'succeeded' || trigger.state === 'errored') return trigger.state;
  if (trigger.state !== 'failed') return null;
  // The watch's verdict with the switch back done (go-live.ts says so in the summary it returns).
  return /\bswitched back to \w+/.test(trigger.summary ?? '') ? 'switched_back' : 'failed';
}

function deployLink(config: Config, id: string): string | null {
  const base = config.server.public_url?.replace(/\/+$/, '');
  return base ? `${base}/deploys/${encodeURIComponent(id)}` : null;
}

export function triggerEvent(config: Config, trigger: Deploy, outcome: NotifyOutcome): NotifyEvent {
  const to = parseColor(trigger.color ?? undefined);
  const started = trigger.startedAt ? Date.parse(trigger.startedAt) : NaN;
  const ended = trigger.finishedAt ? Date.parse(trigger.finishedAt) : NaN;
  const summary = trigger.summary?.trim() || outcome;
  return {
    app: trigger.app,
    deployId: trigger.id,
    outcome,
    step: outcome === 'succeeded' ? null : trigger.failedStep,
    commit: trigger.resolvedSha,
    ref: trigger.ref,
    colors: { from: to ? otherColor(to) : null, to: to ?? null },
    durationMs: Number.isFinite(started) && Number.isFinite(ended) ? Math.max(0, ended - started) : null,
    summary,
    url: deployLink(config, trigger.id),
    at: trigger.finishedAt ?? new Date().toISOString(),
  };
}

export function failoverEvent(config: Config, app: string, failover: { id: string; from: string; to: string; sha: string }, reason: string): NotifyEvent {
  return {
    app,
    deployId: failover.id,
    outcome: 'failover',
    step: null,
    commit: failover.sha,
    ref: null,
    colors: { from: failover.from, to: failover.to },
    durationMs: null,
    summary: `failed over from ${failover.from} to ${failover.to}: ${reason}`,
    url: deployLink(config, failover.id),
    at: new Date().toISOString(),
  };
}

export function wants(target: NotifyTarget, event: NotifyEvent): boolean {
  return target.on.includes(event.outcome) && (target.apps === undefined || target.apps.includes(event.app));
}

const HEADLINE: Record<NotifyOutcome, string> = {
  succeeded: 'deployed',
  failed: 'deploy FAILED',
  errored: 'deploy ERRORED (a fault of duet)',
  switched_back: 'SWITCHED BACK after the watch',
  failover: 'FAILOVER',
};

/** Each chat's own cap on a message: Slack's text 40,000 characters, Discord's content 2,000, ntfy's body 4,096 bytes. */
const LIMITS = {
  slack: (text: string) => text.length <= 40_000,
  discord: (text: string) => text.length <= 2_000,
  ntfy: (text: string) => Buffer.byteLength(text) <= 4_096,
};

/** One line: app, what happened, which commit, the summary, the link; the summary is what gives way. */
function oneLine(event: NotifyEvent, format: keyof typeof LIMITS): string {
  const what = [event.ref?.replace(/^refs\/(?:heads|tags)\//, ''), event.commit?.slice(0, 7)].filter(Boolean).join(' @ ');
  const head = `${event.app}: ${HEADLINE[event.outcome]}${what ? ` (${what})` : ''}: `;
  const tail = event.url ? ` ${event.url}` : '';
  const summary = event.summary.replace(/\s+/g, ' ').trim();
  const fits = LIMITS[format];
  if (fits(head + summary + tail)) return head + summary + tail;
  // Cut by code points, never inside one; the longest cut that fits, with an ellipsis.
  const points = Array.from(summary);
  let low = 0;
  let high = points.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fits(`${head}${points.slice(0, mid).join('')}…${tail}`)) low = mid;
    else high = mid - 1;
  }
  return `${head}${points.slice(0, low).join('')}…${tail}`;
}

/** The Standard Webhooks payload: {type, timestamp, data}. */
function webhookPayload(event: NotifyEvent): string {
  return JSON.stringify({
    type: `deploy.${event.outcome}`,
    timestamp: event.at,
    data: {
      app: event.app,
      deploy_id: event.deployId,
      outcome: event.outcome,
      step: event.step,
      commit: event.commit,
      ref: event.ref,
      colors: event.colors,
      duration_ms: event.durationMs,
      summary: event.summary,
      url: event.url,
    },
  });
}

/** The request body and content type for a target's format. */
export function renderBody(format: NotifyTarget['format'], event: NotifyEvent): { body: string; contentType: string } {
  switch (format) {
    case 'slack':
      return { body: JSON.stringify({ text: oneLine(event, 'slack') }), contentType: 'application/json' };
    case 'discord':
      // allowed_mentions: a summary quoting "@everyone" from a commit must not ping anyone.
      return { body: JSON.stringify({ content: oneLine(event, 'discord'), allowed_mentions: { parse: [] } }), contentType: 'application/json' };
    case 'ntfy':
      return { body: oneLine(event, 'ntfy'), contentType: 'text/plain; charset=utf-8' };
    case 'webhook':
      return { body: webhookPayload(event), contentType: 'application/json' };
  }
}
