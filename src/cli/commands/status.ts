import type { AppStatus } from '../../pipeline/status.js';
import { appStatus, breakingLine, configChangeText } from '../../pipeline/status.js';
import { appFrom, print, type Command } from '../command.js';

export const status: Command = {
  name: 'status',
  summary: 'which color is live, what each color runs, whether a deploy is in progress',
  usage: 'status [app] [--json]',
  options: { json: { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, status);
    const result = await appStatus(config, app);
    print(context.stdout, context.values.json ? JSON.stringify(result) : render(result));
  },
};

function render(s: AppStatus): string {
  const lines = [`${s.app}: ${s.enabled ? `${s.enabled} is live` : 'nothing is live'}`];
  const live = s.enabled ? s.colors[s.enabled] : undefined;
  if (live && (s.state === 'unhealthy' || s.state === 'on-fallback' || (s.state === 'down' && live.state !== 'healthy'))) {
    const since = live.downSince ? ` since ${live.downSince}` : '';
    const why = live.lastProblem ? ` (${live.lastProblem})` : '';
    const answering =
      s.state === 'on-fallback' ? `; ${s.serving} answers through nginx's fallback` : s.state === 'down' ? '; the public port does not answer' : '';
    lines.push(`  warning: ${s.enabled} (live) is ${live.state.toUpperCase()}${since}${why}${answering}`);
  } else if (s.state === 'mismatch') {
    lines.push(`  warning: duet's nginx config points at ${s.enabled} but the public port is served by ${s.serving} (reload nginx)`);
  } else if (s.state === 'down') {
    lines.push(`  warning: the public port does not answer`);
  }
  const portWidth = Math.max(...Object.values(s.colors).map((c) => String(c.port).length));
  for (const color of ['blue', 'green'] as const) {
    const c = s.colors[color];
    const state = c.running ? `running pid ${c.pid}, ${c.healthy ? 'healthy' : 'UNHEALTHY'}` : c.state === 'down' ? 'DOWN (exited)' : 'stopped';
    const rev = c.revision ? `${c.revision.slice(0, 7)}${c.ref ? ` (${c.ref})` : ''}` : 'no checkout';
    const restarts = c.restarts ? `, ${c.restarts} restart${c.restarts === 1 ? '' : 's'}` : '';
    lines.push(`  ${color === s.enabled ? '*' : ' '} ${color.padEnd(5)} ${String(c.port).padEnd(portWidth)} ${state.padEnd(30)} ${rev}${restarts}`);
    if (c.configChanged) lines.push(`          ${configChangeText(c.configChanged)}`);
  }
  if (s.breaking) lines.push(`  breaking release live: ${breakingLine(s.breaking)}`);
  if (s.tls) lines.push(`  https: ${tlsLine(s.tls)}`);
  if (s.deploying) lines.push(`  deploying: ${s.deploying.id} ${s.deploying.ref ?? ''} at step ${s.deploying.step ?? 'starting'} (pid ${s.deploying.pid})`);
  if (s.bothCrashed) lines.push(`  both colors crashed: ${s.bothCrashed.at} (${s.bothCrashed.detail}); not a verdict on the version, no failover`);
  if (s.lastFailover) lines.push(`  last failover: ${s.lastFailover.at} from ${s.lastFailover.from} to ${s.lastFailover.to}: ${s.lastFailover.reason}`);
  lines.push(
    s.supervisedBy ? `  supervised by duet serve (pid ${s.supervisedBy})` : '  not supervised: duet serve is not running (crashed colors are not restarted)',
  );
  return lines.join('\n');
}

function tlsLine(tls: NonNullable<AppStatus['tls']>): string {
  if (tls.daysLeft === null) return `no certificate served (tls ${tls.mode}${tls.mode === 'acme' ? ': none issued yet? sudo duet install' : ''})`;
  const warning = tls.daysLeft <= 21 ? ' WARNING: renew it (duet doctor says how)' : '';
  return `certificate expires in ${tls.daysLeft} days (${tls.expiresAt})${warning}`;
}
