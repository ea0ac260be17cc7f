import type { DeployBreakdown } from './lib/analyze.js';
import type { PacedResult } from './lib/paced-load.js';
import type { WrkResult } from './lib/wrk.js';
import type { Results } from './results.js';
import type { ApiRollback, BreakdownResult } from './scenarios/breakdown.js';
import type { LoadRow } from './scenarios/deploy-load.js';
import { GOAL_RATE, type SystemIntake } from './scenarios/webhook.js';
import type { CrashRun, FailsSystem, KillRun } from './scenarios/app-fails.js';
import { clearlyAbove, meanWithError, median, type MeanWithError } from './lib/stats.js';
import { isolationDetails } from './scenarios/build-isolation.js';
import { artifactDetails } from './scenarios/artifact-update.js';
import { DUET_PORT, DUET_SOCKET, DUET_TLS, NAIVE, NAIVE_SETUP, PM2, PM2_CLUSTER, RELOAD, RELOAD_AMID, RELOAD_TLS } from './systems.js';

/**
 * The Markdown report. Every number comes from `Results`; nothing is typed in. "—" means the
 * figure does not apply to that system, "n/a" that it was not measured (the reason is listed under
 * the table). A duet figure with a goal shows the goal and ✓ or ✗.
 */

const NA = 'n/a';
const DASH = '—';

type Check = boolean | null;

function num(value: number | null | undefined, digits?: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return NA;
  const d = digits ?? (Math.abs(value) < 10 ? 1 : 0);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const ms = (value: number | null | undefined, digits?: number): string => (value === null || value === undefined ? NA : `${num(value, digits)} ms`);
const pct = (ratio: number | null | undefined): string => (ratio === null || ratio === undefined ? NA : `${(ratio * 100).toFixed(ratio < 0.01 ? 2 : 1)}%`);

function goal(text: string, check: Check, goalText: string): string {
  const mark = check === null ? '?' : check ? '✓' : '✗';
  return `${text} (goal ${goalText}) ${mark}`;
}

const below = (value: number | null | undefined, limit: number): Check => (value === null || value === undefined ? null : value < limit);

function loadRow(results: Results, system: string, connection: 'keep-alive' | 'close'): LoadRow | undefined {
  return results.load.find((r) => r.system === system && r.connection === connection);
}

const failed = (w: WrkResult): string => `${num(w.non2xx, 0)} / ${num(w.socketErrors, 0)}`;

/** Socket errors per deploy (or reload), from each one's own wrk run; null for older results. */
const errorsPerEvent = (row: LoadRow): MeanWithError | null => (row.perEvent?.length ? meanWithError(row.perEvent.map((e) => e.socketErrors)) : null);
const perEventText = (m: MeanWithError): string => `${num(m.mean, 1)} ± ${num(m.standardError, 1)}`;

function loadCells(results: Results, system: string): [string, string, string] {
  const ka = loadRow(results, system, 'keep-alive');
  const close = loadRow(results, system, 'close');
  const reloadKa = loadRow(results, RELOAD, 'keep-alive');
  let kaCell = ka ? failed(ka.wrk) : NA;
  // The reload amid deploy work is run with keep-alive clients only in the full run, by design.
  let closeCell = close ? failed(close.wrk) : system === RELOAD_AMID && ka ? DASH : NA;
  if (system === DUET_SOCKET) {
    kaCell = goal(kaCell, ka ? ka.wrk.non2xx === 0 && ka.wrk.socketErrors === 0 : null, '0 / 0');
    closeCell = goal(closeCell, close ? close.wrk.non2xx === 0 && close.wrk.socketErrors === 0 : null, '0 / 0');
  } else if (system === DUET_PORT) {
    // Keep-alive errors per switch against nginx's own per reload: the counts vary so much from
    // one reload to the next that only a difference beyond their spread means duet added any.
    const duet = ka ? errorsPerEvent(ka) : null;
    const reload = reloadKa ? errorsPerEvent(reloadKa) : null;
    if (duet) kaCell += ` (${perEventText(duet)} per switch)`;
    kaCell = goal(
      kaCell,
      ka && duet && reload ? ka.wrk.non2xx === 0 && !clearlyAbove(duet, reload) : null,
      `0 / not above a bare nginx -s reload's ${reload ? perEventText(reload) : NA} per reload by more than 2 standard errors`,
    );
    const amidKa = loadRow(results, RELOAD_AMID, 'keep-alive');
    const amid = amidKa ? errorsPerEvent(amidKa) : null;
    if (duet && amid) kaCell += `; a reload amid the same deploy work: ${perEventText(amid)} ${clearlyAbove(duet, amid) ? '✗' : '✓'}`;
    closeCell = goal(closeCell, close ? close.wrk.non2xx === 0 && close.wrk.socketErrors === 0 : null, '0 / 0');
  } else if (system === DUET_TLS) {
    // Issue 27: a certificate change costs keep-alive clients no more than a bare reload of the same nginx over HTTPS.
    const duet = ka ? errorsPerEvent(ka) : null;
    const httpsKa = loadRow(results, RELOAD_TLS, 'keep-alive');
    const reload = httpsKa ? errorsPerEvent(httpsKa) : null;
    if (duet) kaCell += ` (${perEventText(duet)} per reload-tls)`;
    kaCell = goal(
      kaCell,
      ka && duet && reload ? ka.wrk.non2xx === 0 && !clearlyAbove(duet, reload) : null,
      `0 / not above a bare nginx -s reload's ${reload ? perEventText(reload) : NA} per reload (HTTPS) by more than 2 standard errors`,
    );
    const plain = reloadKa ? errorsPerEvent(reloadKa) : null;
    if (duet && plain) kaCell += `; the plain-HTTP reload row: ${perEventText(plain)} ${clearlyAbove(duet, plain) ? '✗' : '✓'}`;
    closeCell = goal(closeCell, close ? close.wrk.non2xx === 0 && close.wrk.socketErrors === 0 : null, '0 / 0');
  }
  const latency = ka ? `${num(ka.wrk.p50Ms, 1)} / ${num(ka.wrk.p99Ms, 1)} ms` : NA;
  return [kaCell, closeCell, latency];
}

function breakdownCells(b: BreakdownResult | undefined, mode: 'socket' | 'port'): [string, string, string] {
  if (!b) return [NA, NA, NA];
  const s = b.summary;
  const limit = mode === 'socket' ? 10 : 100;
  return [
    goal(ms(s.overheadMs), below(s.overheadMs, 250), '< 250 ms'),
    goal(ms(s.healthyToPublicMs), below(s.healthyToPublicMs, limit), `< ${limit} ms`),
    // The goal is checked on the request to a running duet serve; the CLI adds node's start-up.
    goal(
      `${ms(s.apiRollbackMs)} via serve's API; CLI ${ms(s.rollbackCliMs)} (${ms(s.rollbackJournalMs)} in journal)`,
      below(s.apiRollbackMs, 200),
      '< 200 ms end to end',
    ),
  ];
}

function installCell(results: Results): string {
  const s = results.install?.summary;
  if (!s) return NA;
  const cell = goal(
    `${pct(s.sameRatio)} / ${pct(s.otherRatio)}`,
    s.sameRatio === null || s.otherRatio === null ? null : s.sameRatio < 0.05 && s.otherRatio < 0.05,
    '< 5% each',
  );
  const scripted = results.install?.withInstallScript;
  if (!scripted) return cell;
  // No goal: the dependency's own install script runs for every commit, and costs what it costs.
  return `${cell}; with an install script (${scripted.dependency}, rebuilt per commit): ${pct(scripted.summary.sameRatio)} / ${pct(scripted.summary.otherRatio)}`;
}

function maxAcks(intake: SystemIntake | undefined): number | null {
  const max = intake?.max;
  if (!max) return null;
  const acks = Object.entries(max.counts)
    .filter(([status]) => /^2\d\d$/.test(status))
    .reduce((s, [, c]) => s + c, 0);
  return max.durationS > 0 ? acks / max.durationS : null;
}

const atGoalRate = (intake: SystemIntake | undefined): PacedResult | undefined => intake?.paced.find((p) => p.offeredPerS === GOAL_RATE);

function webhookIntake(results: Results): { duet?: SystemIntake; other?: SystemIntake; skipped?: string } {
  const w = results.webhook;
  if (!w) return {};
  return 'skipped' in w.webhook ? { duet: w.duet, skipped: w.webhook.skipped } : { duet: w.duet, other: w.webhook };
}

export function renderSummary(results: Results): string {
  const { duet, other, skipped } = webhookIntake(results);
  const duetMax = maxAcks(duet);
  const otherMax = maxAcks(other);
  const burst = results.webhook?.burst;
  const header = [
    'system',
    'failed while deploying, keep-alive (non-2xx / socket errors)',
    'failed, `Connection: close`',
    'latency p50 / p99 (keep-alive)',
    "duet's overhead per deploy",
    'healthy → public port answers',
    'rollback to warm standby',
    'install: same lockfile / other color (of cold `npm ci`)',
    'webhook acks/s (max)',
    'p99 at 200 deliveries/s',
    'burst of 100 pushes',
    'RSS idle / during deploys',
  ];
  const rows: string[][] = [];
  for (const [system, mode] of [
    [DUET_SOCKET, 'socket'],
    [DUET_PORT, 'port'],
  ] as const) {
    rows.push([
      system,
      ...loadCells(results, system),
      ...breakdownCells(results.breakdown[mode], mode),
      mode === 'port' ? installCell(results) : DASH,
      DASH,
      DASH,
      DASH,
      DASH,
    ]);
  }
  // Rows of parts that did not run (--only) are left out.
  const tlsRan = results.load.some((r) => r.system === DUET_TLS || r.system === RELOAD_TLS);
  for (const system of [...(tlsRan ? [DUET_TLS, RELOAD_TLS] : []), RELOAD, RELOAD_AMID, NAIVE, PM2])
    rows.push([system, ...loadCells(results, system), DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH]);

  const duet200 = atGoalRate(duet);
  const other200 = atGoalRate(other);
  rows.push([
    'duet serve',
    DASH,
    DASH,
    DASH,
    DASH,
    DASH,
    DASH,
    DASH,
    duet ? goal(num(duetMax, 0), duetMax !== null && otherMax !== null ? duetMax >= otherMax : null, `≥ webhook's ${num(otherMax, 0)}`) : NA,
    // Two decimals: a p99 of 10.04 ms reads as 10 ms with the default rounding, beside its ✗.
    duet ? `${goal(ms(duet200?.sentP99Ms, 2), below(duet200?.sentP99Ms, 10), '< 10 ms')}; the floor: ${ms(results.webhook?.floor?.sentP99Ms, 2)}` : NA,
    burst ? goal(`${burst.deploys} deploys`, burst.deploys <= 2, '≤ 2') : NA,
    duet ? `${goal(`${num(duet.rssIdleMb)} MB`, below(duet.rssIdleMb, 80), '< 80 MB idle')} / ${num(burst?.rssPeakMb)} MB` : NA,
  ]);
  rows.push([
    'webhook (adnanh)',
    DASH,
    DASH,
    DASH,
    DASH,
    DASH,
    DASH,
    DASH,
    other ? num(otherMax, 0) : NA,
    other ? ms(other200?.sentP99Ms, 2) : NA,
    DASH,
    other ? `${num(other.rssIdleMb)} MB / ${DASH}` : NA,
  ]);

  const lines = [markdownTable(header, rows)];
  const notes: string[] = [];
  if (skipped) notes.push(`webhook (adnanh): not measured: ${skipped}`);
  for (const [section, why] of Object.entries(results.failures)) notes.push(`${section}: not measured: ${why}`);
  if (notes.length) lines.push('', ...notes.map((n) => `- n/a: ${n}`));
  return lines.join('\n');
}

export function markdownTable(header: string[], rows: string[][]): string {
  const escape = (cell: string): string => cell.replaceAll('|', '\\|');
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ].join('\n');
}

function loadDetails(results: Results): string {
  const header = [
    'system',
    'clients',
    'deploys',
    'requests',
    'req/s',
    'non-2xx',
    'connect',
    'read',
    'write',
    'timeout',
    'failed per deploy',
    'p50',
    'p99',
    'max',
    'versions answered',
    'deploy (mean)',
  ];
  const rows = results.load.map((r) => {
    const w = r.wrk;
    const versions = Object.entries(r.versions)
      .map(([v, c]) => `${v}: ${c}`)
      .join(', ');
    const mean = r.eventMs.length ? r.eventMs.reduce((a, b) => a + b, 0) / r.eventMs.length : null;
    return [
      r.system,
      r.concurrentWith?.length ? `${r.connection} (same deploys as ${r.concurrentWith.join(', ')})` : r.connection,
      String(r.events),
      num(w.requests, 0),
      num(w.requestsPerS, 0),
      num(w.non2xx, 0),
      num(w.errors.connect, 0),
      num(w.errors.read, 0),
      num(w.errors.write, 0),
      num(w.errors.timeout, 0),
      r.perEvent?.length ? r.perEvent.map((e) => num(e.non2xx + e.socketErrors, 0)).join(', ') : NA,
      ms(w.p50Ms, 2),
      ms(w.p99Ms, 2),
      ms(w.maxMs, 0),
      versions,
      r.system === RELOAD || r.system === RELOAD_TLS ? `${ms(mean)} (reload)` : r.system === DUET_TLS ? `${ms(mean)} (reload-tls)` : ms(mean),
    ];
  });
  return markdownTable(header, rows);
}

function stepRows(deploys: DeployBreakdown[]): Array<[string, number | null]> {
  const m = (pick: (d: DeployBreakdown) => number | null | undefined): number | null => median(deploys.map(pick));
  return [
    ['resolve', m((d) => d.steps.resolve)],
    ['pick', m((d) => d.steps.pick)],
    ['update', m((d) => d.steps.update)],
    ['  the old idle color stopping (signal → exit)', m((d) => d.appStopMs)],
    ['  fetch (git)', m((d) => d.fetchMs)],
    ['  install (phase)', m((d) => d.installPhaseMs)],
    ['  build', m((d) => d.buildMs)],
    ['start → healthy', m((d) => d.startToHealthyMs)],
    ["  the app's own start (spawn → listening)", m((d) => d.appStartMs)],
    ['  listening → duet saw it healthy', m((d) => d.healthNoticedAfterMs)],
    ['switch', m((d) => d.steps.switch)],
    ['verify', m((d) => d.steps.verify)],
    ['retire', m((d) => d.steps.retire)],
    ['record', m((d) => d.steps.record)],
    ['total (journal)', m((d) => d.journalTotalMs)],
    ['total (CLI wall)', m((d) => d.cliWallMs)],
    ['time in child processes', m((d) => d.childMs)],
    ['waiting on the app', m((d) => d.appWaitMs)],
    ["waiting on nginx's reload (old workers still accepting)", m((d) => d.nginxSettleMs)],
    ["**duet's overhead** (journal total − children − waiting)", m((d) => d.overheadMs)],
    ['CLI outside the journal (node start, imports, config, lock)', m((d) => d.cliOutsideJournalMs)],
    ['overhead including the CLI', m((d) => d.overheadWithCliMs)],
    ['**healthy → public port answers new version**', m((d) => d.healthyToPublicMs)],
    ['healthy → public port answers only the new version', m((d) => d.healthyToOnlyNewMs)],
  ];
}

function breakdownDetails(results: Results): string {
  const socket = results.breakdown.socket;
  const port = results.breakdown.port;
  const socketRows = socket ? stepRows(socket.deploys) : [];
  const portRows = port ? stepRows(port.deploys) : [];
  const labels = (socketRows.length ? socketRows : portRows).map(([label]) => label);
  const n = (b: BreakdownResult | undefined): string => (b ? `${b.deploys.length}` : '0');
  const header = ['step (median)', `socket (n=${n(socket)})`, `port (n=${n(port)})`];
  const rows = labels.map((label, i) => [label, socketRows.length ? ms(socketRows[i]![1]) : NA, portRows.length ? ms(portRows[i]![1]) : NA]);
  const rollback = (b: BreakdownResult | undefined, pick: (d: DeployBreakdown) => number | null | undefined): string =>
    b ? ms(median(b.rollbacks.map(pick))) : NA;
  const api = (b: BreakdownResult | undefined, pick: (r: ApiRollback) => number | null): string => (b ? ms(median(b.apiRollbacks.map(pick))) : NA);
  rows.push([
    '**rollback via duet serve: request → public port answers the previous version**',
    api(socket, (r) => r.endToEndMs),
    api(port, (r) => r.endToEndMs),
  ]);
  rows.push(['  its 202', api(socket, (r) => r.ackMs), api(port, (r) => r.ackMs)]);
  rows.push(['  its journal total', api(socket, (r) => r.journalTotalMs), api(port, (r) => r.journalTotalMs)]);
  rows.push(['rollback: CLI wall (end to end)', rollback(socket, (d) => d.cliWallMs), rollback(port, (d) => d.cliWallMs)]);
  rows.push(['rollback: journal total', rollback(socket, (d) => d.journalTotalMs), rollback(port, (d) => d.journalTotalMs)]);
  rows.push(['rollback: healthy → public', rollback(socket, (d) => d.healthyToPublicMs), rollback(port, (d) => d.healthyToPublicMs)]);
  rows.push(['rollback: CLI outside the journal', rollback(socket, (d) => d.cliOutsideJournalMs), rollback(port, (d) => d.cliOutsideJournalMs)]);
  const children = (b: BreakdownResult | undefined): string =>
    b
      ? Object.entries(b.deploys[0]?.children ?? {})
          .map(([label, c]) => `${label} ×${c.calls} ${num(c.ms)} ms`)
          .join(', ')
      : NA;
  rows.push(['child processes of the first deploy', children(socket), children(port)]);
  return markdownTable(header, rows);
}

function installDetails(results: Results): string {
  const install = results.install;
  if (!install) return `${NA}: ${results.failures.install ?? 'not run'}`;
  const header = [
    'round',
    'deploy',
    'color',
    'install',
    'install phase',
    'npm ci',
    'cp during the deploy',
    'cp after its end (copied ahead)',
    'of cold npm ci',
  ];
  const maybe = (value: number | null | undefined): string => (value === null || value === undefined ? DASH : ms(value));
  const table = (rounds: typeof install.rounds): string =>
    markdownTable(
      header,
      rounds.flatMap((round, i) =>
        round.map((c) => [
          String(i + 1),
          c.case,
          c.color ?? NA,
          c.outcome ?? NA,
          ms(c.installPhaseMs),
          maybe(c.npmCiMs),
          maybe(c.copyMs),
          maybe(c.copyAheadMs),
          pct(c.ratio),
        ]),
      ),
    );
  const scripted = install.withInstallScript;
  const second = scripted
    ? `\n\nThe same plus ${scripted.dependency}, whose install script \`npm rebuild\` runs again after each skip or copy (${scripted.packages} packages).\n\n${table(scripted.rounds)}`
    : '';
  return `Dependencies: ${install.dependencies.join(', ')} (${install.packages} packages).\n\n${table(install.rounds)}${second}`;
}

function webhookDetails(results: Results): string {
  const w = results.webhook;
  if (!w) return `${NA}: ${results.failures.webhook ?? 'not run'}`;
  const { duet, other, skipped } = webhookIntake(results);
  const header = [
    'offered',
    'duet: acks/s',
    'duet: p50 / p99',
    'duet: p99 from due (sent late)',
    'in duet: p50 / p99',
    'duet: CPU per ack',
    'webhook: acks/s',
    'webhook: p50 / p99',
    'webhook: p99 from due (sent late)',
    'webhook: CPU per ack',
  ];
  const latency = (p: PacedResult): [string, string] => [`${ms(p.sentP50Ms, 2)} / ${ms(p.sentP99Ms, 2)}`, `${ms(p.p99Ms, 2)} (${ms(p.sendLateP99Ms, 2)})`];
  const rows = (duet?.paced ?? []).map((d) => {
    const o = other?.paced.find((p) => p.offeredPerS === d.offeredPerS);
    return [
      `${d.offeredPerS}/s for ${num(d.sent / d.offeredPerS, 1)} s`,
      `${num(d.acksPerS, 0)} (${d.acks}/${d.sent})`,
      ...latency(d),
      d.serverP99Ms === undefined ? NA : `${ms(d.serverP50Ms, 1)} / ${ms(d.serverP99Ms, 1)}`,
      ms(d.cpuMsPerAck, 2),
      o ? `${num(o.acksPerS, 0)} (${o.acks}/${o.sent})` : NA,
      ...(o ? latency(o) : [NA, NA]),
      o ? ms(o.cpuMsPerAck, 2) : NA,
    ];
  });
  // wrk is closed-loop: it times each request from its send, and nothing is due.
  const maxRow = (intake: SystemIntake | undefined): [string, string, string, string] =>
    intake?.max
      ? [num(maxAcks(intake), 0), `${ms(intake.max.p50Ms, 2)} / ${ms(intake.max.p99Ms, 2)}`, DASH, ms(intake.maxCpu?.cpuMsPerAck, 2)]
      : [NA, NA, NA, NA];
  const [duetAcks, duetLatency, duetFromDue, duetCpu] = maxRow(duet);
  rows.push([`max (wrk, ${String(results.meta.settings.webhookConnections)} connections)`, duetAcks, duetLatency, duetFromDue, NA, duetCpu, ...maxRow(other)]);
  const lines = [markdownTable(header, rows), ''];
  if (skipped) lines.push(`webhook (adnanh) not measured: ${skipped}`, '');
  if (w.floor) {
    const [floorLatency, floorFromDue] = latency(w.floor);
    lines.push(
      `The floor at ${w.floor.offeredPerS}/s, right after duet's step: a bare node HTTP server that makes one durable append per request (duet's AppendLog) and answers 202, ` +
        `nothing else: p50 / p99 ${floorLatency}, p99 from due ${floorFromDue}.`,
    );
  }
  lines.push(
    `The disk: one small durable append (open, append, fsync, close; duet does one per delivery) took p50 ${ms(w.fsync.baseline.p50Ms, 2)} / p99 ${ms(w.fsync.baseline.p99Ms, 2)} before the loads, ` +
      Object.entries(w.fsync.beforeMax)
        .map(([system, f]) => `p50 ${ms(f.p50Ms, 2)} / p99 ${ms(f.p99Ms, 2)} right before ${system}'s maximum load`)
        .join(', ') +
      `, p50 ${ms(w.fsync.after.p50Ms, 2)} / p99 ${ms(w.fsync.after.p99Ms, 2)} after the loads.`,
  );
  if (duet?.durable) {
    lines.push(
      `Durability: ${duet.durable.recorded} of ${duet.durable.acked} deliveries duet acknowledged are in the app's journal (${duet.durable.missing} missing).`,
    );
  }
  const b = w.burst;
  lines.push(
    `Burst: ${b.pushes} pushes of ${b.pushes} different commits sent at once: ${b.acked} acknowledged (${b.accepted} new triggers, ${b.duplicates} merged), ` +
      `${b.superseded} superseded, **${b.deploys} deploys** (${b.deployedShas.map((s) => s.slice(0, 7)).join(', ')}; the push accepted last: ${b.lastAcceptedSha?.slice(0, 7) ?? NA}), queue drained after ${ms(b.drainedMs)}.`,
  );
  lines.push(
    `Footprint: duet serve RSS ${num(duet?.rssIdleMb)} MB idle, ${num(w.duetRssPeakUnderLoadMb)} MB at its peak under the intake load, ${num(b.rssPeakMb)} MB peak during the burst's deploys` +
      (other ? `; webhook (adnanh) ${num(other.rssIdleMb)} MB idle.` : '.'),
  );
  return lines.join('\n');
}

// --- section 6: the app fails ----------------------------------------------------------------

const failsSystem = (results: Results, system: string): FailsSystem | undefined => results.fails?.systems.find((s) => s.system === system);
const list = (values: Array<number | null>, digits = 0): string => values.map((v) => num(v, digits)).join(', ');
const maxOf = (values: Array<number | null>): number | null =>
  values.some((v) => v === null) || values.length === 0 ? null : Math.max(...(values as number[]));
const byKind = (run: { window: KillRun['window'] }): string =>
  `${num(run.window.byKind['keep-alive']?.failed ?? 0, 0)} / ${num(run.window.byKind.close?.failed ?? 0, 0)}`;
const causes = (c: Record<string, number>): string =>
  Object.entries(c)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ') || DASH;
/** The open connections of the process(es) that crashed in a crashing deploy's window. */
const crashedConnections = (crash: CrashRun): number | null =>
  crash.crashes.length && crash.crashes.every((c) => c.connections !== null) ? crash.crashes.reduce((t, c) => t + c.connections!, 0) : null;

function killCells(sys: FailsSystem | undefined): [string, string, string] {
  if (!sys || sys.kills.length === 0) return [NA, NA, NA];
  const kills = sys.kills;
  const failedText = `${list(kills.map((k) => k.window.failed))} in ${kills.length} kill${kills.length > 1 ? 's' : ''}`;
  let failedCell = failedText;
  // A request the killed color had received is never sent to the other one (issue 23): the
  // kill costs the requests in it. With no upstream keep-alive, every client request in flight
  // is in the app or its listening socket's queue.
  if (sys.mode)
    failedCell = goal(
      failedText,
      kills.every((k) => k.window.failed <= k.clientInFlight),
      `≤ the client requests in flight at the kill: ${list(kills.map((k) => k.clientInFlight))}`,
    );
  if (!sys.mode) {
    const back = kills.map((k) => k.restartListeningMs);
    const again = back.every((b) => b === null) ? 'never within 5 s: nothing restarts it' : `its replacement listening after ${list(back)} ms`;
    return [failedCell, DASH, again];
  }
  const fallback = kills.map((k) => k.firstFallbackMs);
  const worst = maxOf(fallback);
  return [
    failedCell,
    goal(`${list(fallback, 1)} ms`, worst === null ? null : worst < 50, '< 50 ms, each kill'),
    `${list(kills.map((k) => k.liveBackMs))} ms (restarted by duet serve)`,
  ];
}

function crashCells(sys: FailsSystem | undefined, inFlight: number): [string, string] {
  const crash = sys?.crash;
  if (!sys || !crash) return [NA, NA];
  const failedCount = crash.window.failed;
  const connections = crashedConnections(crash);
  let failedCell = num(failedCount, 0);
  if (sys.system === DUET_SOCKET) failedCell = goal(failedCell, failedCount <= inFlight, `≤ the requests in flight: ${inFlight}`);
  else if (sys.system === DUET_PORT) {
    // A client's connection to nginx lost under it is nginx's reload (the switch, the switch
    // back), as in section 1, not the crash: nginx stays up when an app dies.
    const atCrash = failedCount - crash.window.lost;
    failedCell =
      `${num(failedCount, 0)}: ${goal(`${num(atCrash, 0)} at the crash`, atCrash <= inFlight, `≤ the requests in flight: ${inFlight}`)} (the crashed process had ${num(connections, 0)} open connections); ` +
      `${num(crash.window.lost, 0)} keep-alive connections closed by nginx's reloads (${num(crash.lostAfterSwitch, 0)} after the switch, ${num(crash.lostAfterCrash, 0)} after the crash, when duet switched back)`;
  }
  const crashes = `${crash.crashes.length} crash${crash.crashes.length === 1 ? '' : 'es'} in the window`;
  if (!sys.mode) return [failedCell, `${sys.system.startsWith('pm2') ? '`pm2 reload`' : 'the restart'} returned after ${ms(crash.wallMs, 0)}; ${crashes}`];
  const after = Object.keys(crash.versionsAfter);
  const switchedBack = crash.failedStep === 'watch' && crash.exitCode === 1 && after.length === 1 && after[0] === crash.previous;
  return [
    failedCell,
    goal(
      `exit ${crash.exitCode} at \`${crash.failedStep ?? NA}\` after ${ms(crash.wallMs, 0)}; then only ${after.join(', ') || NA} answered`,
      switchedBack,
      `fails at \`watch\`, ${crash.previous} serves`,
    ),
  ];
}

/** C. requests of death: what happened to every other request, and whether it cost the version. */
function deathCell(sys: FailsSystem | undefined): string {
  const run = sys?.deaths;
  if (!run) return NA;
  const w = run.window;
  const text =
    `${num(w.failed, 0)} of ${num(w.requests, 0)} failed; ${run.crashes} crashes, ${run.restarts} restarts` +
    `${run.failedOver === null ? '' : run.failedOver ? '; failed over to the other version' : '; no failover'}` +
    `; last failure ${ms(run.lastFailureAfterMs, 0)} after the last death`;
  return sys.system === DUET_SOCKET ? goal(text, w.failed === 0, '0 failed') : text;
}

function renderFailsSummary(results: Results): string {
  const header = [
    'the app fails',
    'kill -9 of the live instance under load: failed requests',
    'kill → first answer of the fallback',
    'kill → the killed instance answers again',
    `a version crashing ${num((results.fails?.crashAfterMs ?? 3000) / 1000, 0)} s after going live, deployed under load: failed requests`,
    'that deploy',
    `${results.fails?.settings.death.deaths ?? 20} requests of death ${results.fails?.settings.death.intervalMs ?? 350} ms apart under load: the other requests`,
  ];
  const rows = [DUET_SOCKET, DUET_PORT, PM2_CLUSTER, NAIVE_SETUP].map((system) => {
    const sys = failsSystem(results, system);
    const inFlight = results.fails ? results.fails.settings.connections * results.fails.settings.kinds.length : 0;
    return [system, ...killCells(sys), ...crashCells(sys, inFlight), deathCell(sys)];
  });
  return markdownTable(header, rows);
}

function failsDetails(results: Results): string {
  const f = results.fails;
  if (!f) return `${NA}: ${results.failures.fails ?? 'not run'}`;
  const s = f.settings;
  const killHeader = [
    'system',
    'kill',
    'requests',
    'failed: keep-alive / close',
    'causes',
    'open connections of the killed process',
    'client requests in flight at the kill',
    'kill → first fallback answer',
    'fallback answers',
    'kill → killed color answers again',
    'kill → restarted process listening',
    'kill → last failure',
    'kill → process gone',
  ];
  const killRows = f.systems.flatMap((sys) =>
    sys.kills.map((k, i) => [
      sys.system,
      `${i + 1}: pid ${k.pid}${k.color ? ` (${k.color})` : ''}`,
      num(k.window.requests, 0),
      byKind(k),
      causes(k.window.causes),
      k.openConnections === null ? 'unix sockets' : num(k.openConnections, 0),
      num(k.clientInFlight, 0),
      sys.mode ? ms(k.firstFallbackMs, 2) : DASH,
      sys.mode ? num(k.fallbackAnswers, 0) : DASH,
      sys.mode ? ms(k.liveBackMs, 0) : DASH,
      ms(k.restartListeningMs, 0),
      ms(k.lastFailureMs, 0),
      ms(k.goneMs, 1),
    ]),
  );
  const crashHeader = [
    'system',
    'deploy',
    'requests',
    'failed: keep-alive / close',
    'causes',
    'of which connections to nginx lost',
    'switch / first crash / watch ended (from the start)',
    'crashes (open connections of each)',
    'crash → previous version answers',
    'versions answered in the window',
    'after the deploy returned',
  ];
  const crashRows = f.systems.flatMap((sys) => {
    const c = sys.crash;
    if (!c) return [];
    const versions = (v: Record<string, number>): string =>
      Object.entries(v)
        .map(([k, n]) => `${k}: ${n}`)
        .join(', ') || DASH;
    return [
      [
        sys.system,
        sys.mode
          ? `exit ${c.exitCode}, ${c.outcome ?? NA} at \`${c.failedStep ?? NA}\`, ${ms(c.wallMs, 0)}: ${c.error ?? ''}`
          : `returned after ${ms(c.wallMs, 0)}`,
        num(c.window.requests, 0),
        byKind(c),
        causes(c.window.causes),
        num(c.window.lost, 0),
        `${sys.mode ? ms(c.switchMs, 0) : DASH} / ${ms(c.crashes[0] ? c.crashes[0].at - c.startedAt : null, 0)} / ${sys.mode ? ms(c.watchEndMs, 0) : DASH}`,
        c.crashes.length ? `${c.crashes.length} (${c.crashes.map((x) => num(x.connections, 0)).join(', ')})` : '0',
        sys.mode ? ms(c.previousAfterCrashMs, 2) : DASH,
        versions(c.window.versions),
        versions(c.versionsAfter),
      ],
    ];
  });
  const problems = f.systems.flatMap((sys) => sys.problems.map((p) => `- ${sys.system}: ${p}`));
  return [
    `A. kill -9 under load (${s.kinds.join(' and ')} clients, ${s.connections} connections each, at once): failed requests from ${num(s.warmMs / 1000, 1)} s before each kill to ${num(s.afterKillMs / 1000, 0)} s after it.`,
    '',
    markdownTable(killHeader, killRows),
    '',
    `B. a version that crashes ${num(f.crashAfterMs / 1000, 0)} s after it listens, deployed under the same load (duet: health.watch_s ${f.watchS}): failed requests from the deploy's start to ${num(s.duetTailMs / 1000, 0)} s (duet) or ${num(s.otherTailMs / 1000, 0)} s (pm2, naive: their crash comes after they return) after it returned.`,
    '',
    markdownTable(crashHeader, crashRows),
    ...(problems.length ? ['', ...problems] : []),
  ].join('\n');
}

export function renderReport(results: Results): string {
  const m = results.meta;
  return [
    `## duet benchmark${m.quick ? ' (--quick: smaller counts, not the run to quote)' : ''}`,
    '',
    `${m.startedAt}, ${m.cpus} × ${m.cpuModel}, node ${m.node}, ${m.nginx ?? 'nginx ?'}, ${m.wrk ?? 'wrk ?'}; ` +
      `run took ${num(m.durationS, 0)} s; load average ${m.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')} before, ${m.loadAverageAfter.map((l) => l.toFixed(2)).join(' ')} after` +
      ` (1-minute load average as each part began: ${Object.entries(m.loadByPart)
        .map(([part, l]) => `${part} ${l.toFixed(1)}`)
        .join(', ')}).`,
    '',
    renderSummary(results),
    '',
    '— not applicable, n/a not measured, ✓ goal met, ✗ goal missed, ? goal not checkable. Non-2xx / socket errors are counted by wrk, one run around each deploy, added up; see bench/README.md for each figure.',
    '',
    ...(results.fails
      ? [renderFailsSummary(results), '', 'Failed: no answer, or a status not 2xx, counted from each request the load generator recorded (section 6).', '']
      : []),
    '### 1. Failed requests while deploying',
    '',
    loadDetails(results),
    '',
    "### 2. Where a deploy's time goes",
    '',
    breakdownDetails(results),
    '',
    `Child-process timing shims: ${num(m.calibration.shimMs, 2)} ms per shimmed call and ${num(m.calibration.shellMs, 2)} ms per shell-wrapped call outside the logged window (calibrated, counted as child time). ` +
      `Startup floor on this machine during the run: \`node -e 0\` ${ms(m.startup.nodeMs)}, \`duet help\` ${ms(m.startup.duetHelpMs)}. ` +
      `One git command through simple-git: ${ms(m.simpleGit.printingMs)} when it prints, ${ms(m.simpleGit.silentMs)} when it prints nothing; a silent one through duet's wrapper, which avoids simple-git's wait: ${ms(m.simpleGit.duetSilentMs ?? null)}.`,
    '',
    '### 3. Deploying again with the same dependencies',
    '',
    installDetails(results),
    '',
    '### 4. Webhook intake and 5. footprint',
    '',
    webhookDetails(results),
    '',
    '### 6. When the app fails',
    '',
    failsDetails(results),
    '',
    '### 7. A build next to the live app',
    '',
    isolationDetails(results.isolation, results.failures.isolation, markdownTable),
    '',
    "#### An artifact deploy's update against the same release built on the server",
    '',
    artifactDetails(results.artifact, results.failures.artifact, markdownTable),
    '',
  ].join('\n');
}
