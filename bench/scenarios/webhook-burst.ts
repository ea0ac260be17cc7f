import { Agent, request } from 'node:http';
import { appendCommits } from '../lib/git-fast.js';
import { now, type DuetEnv } from '../lib/duet-env.js';
import { log } from '../lib/log.js';
import { sampleRss } from '../lib/proc.js';
import type { Server } from '../lib/servers.js';
import { deliveryHeaders, drained, pushPayload, triggerStates } from './webhook-deliveries.js';

/**
 * Section 4's burst: 100 pushes of 100 real, different commits sent at once to one app, while
 * deploys run. The queue should coalesce them into at most two deploys: the first push to arrive,
 * then the newest.
 */

export interface BurstResult {
  pushes: number;
  acked: number;
  accepted: number;
  duplicates: number;
  deploys: number;
  superseded: number;
  deployedShas: string[];
  /** The commit of the push duet accepted last (pushes sent at once arrive in any order). */
  lastAcceptedSha: string | null;
  drainedMs: number;
  rssPeakMb: number | null;
}

export async function runBurst(env: DuetEnv, serve: Server, count: number, journalPath: string): Promise<BurstResult> {
  const shas = await appendCommits(
    env.setup.repo,
    Array.from({ length: count }, (_, i) => ({ files: { VERSION: `burst${i + 1}\n` }, message: `burst ${i + 1}` })),
  );
  const fullName = env.setup.app.repo!;
  const bodies = shas.map((sha, i) => JSON.stringify(pushPayload(fullName, sha, i === 0 ? sha : shas[i - 1]!)));
  const rss = sampleRss(serve.pid, 50);
  const started = now();
  const startedIso = new Date(started - 5).toISOString();
  const agent = new Agent({ keepAlive: true, maxSockets: count });
  const prefix = `burst-${Date.now().toString(36)}`;
  const answers = await Promise.all(
    bodies.map(
      (body, i) =>
        new Promise<{ status: number; body: string }>((resolve) => {
          const req = request(
            {
              host: '127.0.0.1',
              port: serve.port,
              method: 'POST',
              path: '/webhook',
              agent,
              headers: { ...deliveryHeaders(body, `${prefix}-${i}`), 'content-length': String(Buffer.byteLength(body)) },
            },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => (text += chunk));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            },
          );
          req.on('error', (error) => resolve({ status: 0, body: error.message }));
          req.end(body);
        }),
    ),
  );
  agent.destroy();
  const acked = answers.filter((a) => a.status === 202);
  const ids = new Set<string>();
  let duplicates = 0;
  for (const answer of acked) {
    const parsed = JSON.parse(answer.body) as { deploy?: string; duplicate?: boolean };
    if (parsed.deploy) ids.add(parsed.deploy);
    if (parsed.duplicate) duplicates += 1;
  }
  log(`  burst: ${acked.length}/${count} acknowledged in ${(now() - started).toFixed(0)} ms; waiting for the queue to drain`);

  // Drained: every trigger of the burst has a final state.
  if (!(await drained(journalPath, 120_000, ids))) throw new Error('the burst did not drain within 120 s');
  const states = await triggerStates(journalPath);
  const drainedMs = now() - started;
  const peak = await rss.stop();
  const records = (await env.records()).filter((r) => r.kind === 'deploy' && (r.startedAt ?? '') >= startedIso);
  // The store lists triggers in the order duet accepted them: the last one is the newest push.
  const lastAccepted = [...states.values()].filter((t) => ids.has(t.id)).at(-1);
  const superseded = [...ids].filter((id) => states.get(id)?.state === 'superseded').length;
  const result: BurstResult = {
    pushes: count,
    acked: acked.length,
    accepted: acked.length - duplicates,
    duplicates,
    deploys: records.length,
    superseded,
    deployedShas: records.map((r) => r.resolvedSha ?? '?'),
    lastAcceptedSha: lastAccepted?.sha ?? null,
    drainedMs,
    rssPeakMb: peak.length ? Math.max(...peak) : null,
  };
  log(
    `  burst: ${result.deploys} deploys (${records.map((r) => `${r.outcome} ${r.resolvedSha?.slice(0, 7)}`).join(', ')}), ${superseded} superseded, drained in ${drainedMs.toFixed(0)} ms, peak RSS ${result.rssPeakMb?.toFixed(1)} MB`,
  );
  return result;
}
