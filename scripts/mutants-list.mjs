// The deliberate breakages `npm run mutants` applies (scripts/mutants.mjs), one per promise of
// the manual (docs/deploy.md "What this guarantees" and "When the app fails", docs/security.md
// "Security model") and the ones the test audit of issue 24 found surviving. Each names the
// promise it breaks and the test files that must catch it, the cheapest first (a test name
// pattern where one test of a file suffices). An edit that no longer matches its file exactly
// once fails the run: update the mutant with the code.
//
// Left out on purpose: breakages another guard catches before any behaviour changes (these
// would survive every test, rightly). `proxy_next_upstream error timeout` alone: each upstream
// has one server, so there is nothing to retry on (with the standby as a `backup` server it is a
// mutant below); for the same reason nginx ignores `max_fails` (no `max_fails=0` mutant). The
// idle color's stop after a failed watch: the deploy's failure path stops it too. A delivery id
// seen again: the same body is deduplicated by its digest as well (GitHub redelivers the same
// bytes). And promises only the booted-server suite can hold (`app_user`, `runner: systemd`,
// root-owned env files), which `npm run mutants` does not run.

const edit = (file, from, to) => ({ file, from, to });

/** The `if` that keeps a request the live color received away from the fallback. */
const BYTES_SENT_GUARD = `        if ($upstream_bytes_sent ~ [1-9]) {
            return 502;
        }
`;

export const MUTANTS = [
  // --- When the app fails: nginx
  {
    name: 'nginx port: the fallback gets requests the live color received',
    promise: 'a request the live color received is never sent to the other color',
    edits: [edit('nginx/app-port.conf.template', BYTES_SENT_GUARD, '')],
    tests: [{ file: 'switch/fallback', only: 'received is never sent' }],
  },
  {
    name: 'nginx socket: the fallback gets requests the live color received',
    promise: 'a request the live color received is never sent to the other color',
    edits: [edit('nginx/app-socket.conf.template', BYTES_SENT_GUARD, '')],
    tests: [{ file: 'switch/fallback', only: 'received is never sent' }],
  },
  {
    name: "nginx port: a timeout's 504 goes to the fallback",
    promise: 'a timeout is a 504, never retried',
    edits: [
      edit('nginx/app-port.conf.template', 'error_page 502 = @duet_fallback;', 'error_page 502 504 = @duet_fallback;'),
      edit('nginx/app-port.conf.template', BYTES_SENT_GUARD, ''),
    ],
    tests: [{ file: 'switch/fallback', only: 'never answered' }],
  },
  {
    name: 'nginx port: timeouts retried on the standby as a backup server',
    promise: 'a timeout is a 504, never retried',
    edits: [
      edit(
        'nginx/app-port.conf.template',
        'server 127.0.0.1:{{port}} max_fails=0;\n',
        'server 127.0.0.1:{{port}} max_fails=0;\n    server 127.0.0.1:{{standby_port}} backup;\n',
      ),
      edit('nginx/app-port.conf.template', 'proxy_next_upstream off;', 'proxy_next_upstream error timeout;'),
    ],
    tests: [{ file: 'switch/fallback', only: 'never answered' }],
  },
  {
    name: 'nginx socket: timeouts retried on the standby as a backup server',
    promise: 'a timeout is a 504, never retried',
    edits: [
      edit(
        'nginx/app-socket.conf.template',
        'server unix:{{live_socket}} max_fails=0;\n',
        'server unix:{{live_socket}} max_fails=0;\n    server unix:{{standby_socket}} backup;\n',
      ),
      edit('nginx/app-socket.conf.template', 'proxy_next_upstream off;', 'proxy_next_upstream error timeout;'),
    ],
    tests: [{ file: 'switch/fallback', only: 'never answered' }],
  },
  {
    name: 'nginx port: no fallback when the live color refuses',
    promise: 'nginx falls back per request when the live color refuses the connection',
    edits: [edit('nginx/app-port.conf.template', '        error_page 502 = @duet_fallback; # duet:fallback\n', '')],
    tests: [{ file: 'switch/fallback', only: 'refuses connections' }],
  },
  {
    name: 'nginx port: upstream keep-alive to the colors',
    promise: 'nginx sends every request to a color over a connection of its own (no upstream keep-alive)',
    edits: [
      edit('nginx/app-port.conf.template', 'server 127.0.0.1:{{port}} max_fails=0;\n', 'server 127.0.0.1:{{port}} max_fails=0;\n    keepalive 16;\n'),
      edit('nginx/app-port.conf.template', '    proxy_next_upstream off;\n', '    proxy_next_upstream off;\n    proxy_set_header Connection "";\n'),
    ],
    tests: [{ file: 'switch/fallback', only: 'connection of its own' }],
  },
  {
    name: 'nginx socket: upstream keep-alive to the colors',
    promise: 'nginx sends every request to a color over a connection of its own (no upstream keep-alive)',
    edits: [
      edit('nginx/app-socket.conf.template', 'server unix:{{live_socket}} max_fails=0;\n', 'server unix:{{live_socket}} max_fails=0;\n    keepalive 16;\n'),
      edit('nginx/app-socket.conf.template', '    proxy_next_upstream off;\n', '    proxy_next_upstream off;\n    proxy_set_header Connection "";\n'),
    ],
    tests: [{ file: 'switch/fallback', only: 'connection of its own' }],
  },

  // --- When the app fails: the deploy's watch, supervision
  {
    name: 'fallback: false keeps the fallback',
    promise: 'with fallback: false a dead live color is a 502, the other color gets nothing',
    edits: [edit('src/switch/nginx-conf.ts', "if (app.fallback) marks.add('fallback');", "marks.add('fallback');")],
    tests: [{ file: 'switch/fallback', only: 'fallback: false' }],
  },
  {
    name: 'no watch after the switch',
    promise: 'the deploy watches the new color for health.watch_s after the switch; deploy exits 0 only after it',
    edits: [edit('src/pipeline/go-live.ts', 'if (durationMs === 0) return', 'if (durationMs >= 0) return')],
    tests: [{ file: 'pipeline/watch', only: 'health check starts failing' }],
  },
  {
    name: 'a failed watch does not switch back',
    promise: 'a failed watch switches back to the previous color and stops the new one',
    edits: [edit('src/pipeline/go-live.ts', "WATCH_PROBE_TIMEOUT_MS)).state !== 'healthy') {", "WATCH_PROBE_TIMEOUT_MS)).state !== 'healthy' || other) {")],
    tests: [{ file: 'pipeline/watch', only: 'health check starts failing' }],
  },
  {
    name: 'standby: stop retires the previous color before the watch',
    promise: 'the deploy watches the new color with the previous color still running, whatever standby says',
    edits: [
      edit('src/pipeline/go-live.ts', "  await run.step('watch', `watch ${target} for ${app.health.watch_s} s`, () => watchAfterSwitch(run, target));\n\n", ''),
      edit(
        'src/pipeline/go-live.ts',
        "    return { value: undefined, detail: `${previous} ${how} after ${app.drain_s}s drain${why}` };\n  });\n",
        "    return { value: undefined, detail: `${previous} ${how} after ${app.drain_s}s drain${why}` };\n  });\n  await run.step('watch', `watch ${target} for ${app.health.watch_s} s`, () => watchAfterSwitch(run, target));\n",
      ),
    ],
    tests: [{ file: 'pipeline/watch', only: 'standby: stop' }],
  },
  {
    name: 'no restart backoff',
    promise: 'restarts for the same cause back off: 1 s, 2 s, 4 s ... 60 s',
    edits: [edit('src/pipeline/color-watch.ts', 'return failuresInARow <= 1 ? 0 :', 'return failuresInARow >= 0 ? 0 :')],
    tests: ['pipeline/supervisor-clock'],
  },
  {
    name: 'restart causes counted together',
    promise: 'restarts back off per cause (could not start, died after serving, stayed unhealthy): another cause starts the count anew',
    edits: [edit('src/pipeline/color-watch.ts', 'const count = this.failures?.cause === cause ? this.failures.count + 1 : 1;', 'const count = this.failures ? this.failures.count + 1 : 1;')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'per cause' }],
  },
  {
    name: 'the first restart waits',
    promise: 'a color whose process is gone is restarted at once',
    edits: [edit('src/pipeline/color-watch.ts', 'return failuresInARow <= 1 ? 0 :', 'return failuresInARow <= 0 ? 0 :')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'back off' }],
  },
  {
    name: 'a healthy minute forgets nothing',
    promise: 'a minute healthy forgets the failures (the backoff starts anew)',
    edits: [
      edit(
        'src/pipeline/color-watch.ts',
        '        this.exits = [];\n        this.failures = undefined;\n      }\n      this.setHealth',
        '        this.exits = [];\n      }\n      this.setHealth',
      ),
    ],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'back off' }],
  },
  {
    name: 'supervision does not wait for the lock',
    promise: "while a command holds the app's lock, supervision waits",
    edits: [edit('src/pipeline/supervisor.ts', 'if (await lockHolder(this.app)) return;', 'if ((await lockHolder(this.app)) && false) return;')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'locked' }],
  },
  {
    name: 'slow is dead: unhealthy fails over at once',
    promise: 'a color failing its health checks is acted on only after health.failover_after_s',
    edits: [
      edit(
        'src/pipeline/supervisor.ts',
        'if (unhealthyMs >= this.app.health.failover_after_s * 1000) {',
        "if (unhealthyMs >= 0 && watch.health === 'unhealthy') {",
      ),
    ],
    tests: [{ file: 'pipeline/supervisor', only: 'hangs' }],
  },
  {
    name: 'a dead live color is not failed over after 10 s',
    promise: 'the live color is failed over when it has not answered for 10 s',
    edits: [edit('src/pipeline/supervisor.ts', 'const FAILOVER_AFTER_DOWN_MS = 10_000;', 'const FAILOVER_AFTER_DOWN_MS = 60_000;')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'not answered for 10 s' }],
  },
  {
    name: 'nothing serves, and restarts wait the whole backoff',
    promise: 'while neither color is healthy, or both crash, no color waits longer than 2 s for its restart',
    edits: [edit('src/pipeline/supervisor.ts', '? QUICK_RESTART_MS : Number.POSITIVE_INFINITY;', '? QUICK_RESTART_MS * 30 : Number.POSITIVE_INFINITY;')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'nothing answers' }],
  },
  {
    name: 'a crash loop is no verdict',
    promise: 'a live color that exited 3 times within 60 s is failed over',
    edits: [edit('src/pipeline/supervisor.ts', 'const CRASH_LOOP_EXITS = 3;', 'const CRASH_LOOP_EXITS = 1000;')],
    tests: [{ file: 'pipeline/supervisor', only: 'crash loop' }],
  },
  {
    name: 'failover: false fails over',
    promise: 'never a failover with failover: false',
    edits: [edit('src/pipeline/supervisor.ts', 'const verdict = this.app.failover ? this.verdict(live, now) : undefined;', 'const verdict = this.verdict(live, now);')],
    tests: [{ file: 'pipeline/safety-nets', only: 'failover: false' }],
  },
  {
    name: 'failover to a standby that fails its health check',
    promise: 'a failover goes only to a standby that runs and answers its health check right then',
    edits: [
      edit('src/pipeline/supervisor.ts', "if (this.watches[standby].health !== 'healthy') return", "if (this.watches[standby].health === 'stopped') return"),
      edit('src/pipeline/supervisor.ts', "return report.state === 'healthy' ? undefined :", 'return report.state.length > 0 ? undefined :'),
      edit('src/pipeline/failover.ts', "if (!instance || report?.state !== 'healthy') {", 'if (!instance || report === undefined) {'),
    ],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'unhealthy standby' }],
  },
  {
    name: 'one failed probe is a verdict',
    promise: 'a color is unhealthy only after 3 failed health checks in a row (slow is not dead)',
    edits: [edit('src/instance/watch.ts', 'const FAILURES_IN_A_ROW = 3;', 'const FAILURES_IN_A_ROW = 1;')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'third in a row' }],
  },
  {
    name: 'a crashed standby is left down',
    promise: 'a crashed standby is restarted the same way, so the rollback target stays warm',
    edits: [edit('src/pipeline/supervisor.ts', 'for (const color of [live, standby]) {', 'for (const color of [live]) {')],
    tests: [{ file: 'pipeline/supervisor', only: 'crashed standby' }],
  },
  {
    name: 'a failover not reported',
    promise: 'a failover is logged, counted and reported to GitHub (error on the commit no longer live, success on the one live again)',
    edits: [edit('src/pipeline/supervisor.ts', '      this.observer.failedOver(this.app, result, `${from} ${reason}`);\n', '')],
    tests: [{ file: 'pipeline/supervisor', only: 'crash loop' }],
  },
  {
    name: 'both colors crashing fails over',
    promise: 'both colors crashing within a minute is no verdict on the version: no failover',
    edits: [edit('src/pipeline/supervisor.ts', '    if (this.bothCrashing(now)) return undefined;\n', '')],
    tests: [{ file: 'pipeline/safety-nets', only: 'requests of death under duet serve' }],
  },
  {
    name: 'flapping: traffic moved back to the color it failed over from',
    promise: 'traffic that came to a color by a failover is not moved back while that color runs',
    edits: [edit('src/pipeline/supervisor.ts', 'last.from === standby && last.to === live', 'last.from === live && last.to === live')],
    tests: [{ file: 'pipeline/supervisor', only: 'no flapping' }],
  },
  {
    name: 'a deploy updates the color that answers',
    promise: 'a deploy never stops the color that answers the public port',
    edits: [edit('src/pipeline/deploy.ts', 'if ((await switchOf(app).servingColor()) !== idle) return', 'if ((await switchOf(app).servingColor()) !== idle || live) return')],
    tests: [{ file: 'pipeline/safety-nets', only: 'live color is dead makes the standby live first' }],
  },

  // --- What this guarantees
  {
    name: 'a failed deploy leaves the idle color running',
    promise: 'a failure before the switch never touches live traffic, and the idle color is stopped again',
    edits: [edit('src/pipeline/deploy.ts', 'if (live === color) return;', 'if (live === color || color) return;')],
    tests: [{ file: 'pipeline/failures', only: 'health never passes' }],
  },
  {
    name: 'a failed verify does not switch back',
    promise: 'a failure of verify switches back to the previous color',
    edits: [edit('src/pipeline/switch-step.ts', 'if (!wasLive || wasLive === target ||', 'if (!wasLive || wasLive === target || target ||')],
    tests: [{ file: 'pipeline/system-nginx', only: 'switched back' }],
  },
  {
    name: 'a killed deploy is never closed as interrupted',
    promise: 'crash-safe: the killed deploy is closed in the journal as interrupted, and a re-run converges',
    edits: [
      edit(
        'src/pipeline/run.ts',
        "      await this.journal.append({ type: 'end', id: record.id, at: new Date().toISOString(), outcome: 'interrupted' });\n",
        '',
      ),
    ],
    tests: [{ file: 'pipeline/watch', only: 'killed during the watch' }, 'pipeline/crash'],
  },
  {
    name: 'enabled-instance read from the journal, not from nginx',
    promise: "truth from the machine: the enabled color is read from nginx's conf (or live.sock), never from duet's records",
    edits: [
      edit('src/cli/commands/identify.ts', "import { switchOf } from '../../switch/switch.js';\n", "import { switchOf } from '../../switch/switch.js';\nimport { appJournal } from '../../pipeline/app-journal.js';\n"),
      edit(
        'src/cli/commands/identify.ts',
        'const enabled = (app: AppConfig, config: Config): Promise<Color | undefined> => switchOf(app).configuredColor(config);',
        'const enabled = async (app: AppConfig, config: Config): Promise<Color | undefined> =>\n  ((await appJournal(config, app.name).all()).filter((d) => d.color).at(-1)?.color as Color | undefined) ?? switchOf(app).configuredColor(config);',
      ),
    ],
    tests: [{ file: 'pipeline/machine-truth', only: 'enabled-instance' }],
  },
  {
    name: 'duet pid: the process duet started, not the one that listens',
    promise: "truth from the machine: duet pid names the app's process that listens on the color's port or socket",
    edits: [edit('src/instance/runner.ts', 'return listenerInGroup(instance.pid, app.endpoints[color]) ?? instance.pid;', 'return Date.now() < 0 ? (listenerInGroup(instance.pid, app.endpoints[color]) ?? instance.pid) : instance.pid;')],
    tests: [
      { file: 'pipeline/machine-truth', only: 'duet pid' },
      { file: 'pipeline/systemd-runner', only: "app's own process" },
    ],
  },
  {
    name: "a color's revision taken from its prepared record, not from git",
    promise: "truth from the machine: a color's revision is the commit checked out in its directory",
    edits: [
      edit(
        'src/instance/update.ts',
        'return (await checkedOutRevision(app.paths.checkout[color])) === prepared.sha ? prepared : undefined;',
        'return Date.now() < 0 && (await checkedOutRevision(app.paths.checkout[color])) !== prepared.sha ? undefined : prepared;',
      ),
    ],
    tests: [{ file: 'pipeline/machine-truth', only: 'checked out in its directory' }],
  },
  {
    name: 'a pidfile trusted by its pid alone',
    promise: 'truth from the machine: a pidfile is trusted only if its pid is alive with the recorded start time',
    edits: [
      edit(
        'src/instance/process-identity.ts',
        'return (await processStartTime(identity.pid)) === identity.startTime;',
        'return (await processStartTime(identity.pid)) !== undefined;',
      ),
    ],
    tests: [{ file: 'instance/runner', only: 'belongs to another process' }],
  },
  {
    name: 'durable journal without O_DSYNC',
    promise: 'durable records: the journal lines acknowledged to someone are on disk',
    edits: [edit('src/util/append-log.ts', '(this.options.everyWriteDurable ? constants.O_DSYNC : 0)', '0')],
    tests: [{ file: 'util/append-log', only: 'O_DSYNC' }],
  },
  {
    name: 'the lock file without O_EXCL',
    promise: 'one at a time: every deploy and act takes the same lock across processes',
    edits: [edit('src/pipeline/lock-file.ts', "handle = await open(path, 'wx', 0o644);", "handle = await open(path, 'w', 0o644);")],
    tests: [{ file: 'pipeline/lock', only: 'second deploy waits' }],
  },
  {
    name: 'stop signals the leader, not its group',
    promise: "whole process groups: a killed leader's orphan is stopped",
    edits: [edit('src/util/step-group.ts', 'process.kill(-pgid, signal);', 'process.kill(pgid, signal);')],
    tests: ['instance/process-tree'],
  },

  {
    name: "a failed step's error without its output",
    promise: 'the error names the step, the command, its exit code and the last lines of its output',
    edits: [edit('src/util/command-output.ts', 'outputTail: lastLines(output, TAIL_LINES),', "outputTail: lastLines('', TAIL_LINES),")],
    tests: [{ file: 'pipeline/failures', only: 'install exits 1' }],
  },
  {
    name: 'records written in place',
    promise: "durable records: files duet rewrites are written to a temp file, fsync'd and renamed, never seen torn",
    edits: [
      edit('src/util/atomic-file.ts', "import { open, readFile, rename, unlink } from 'node:fs/promises';", "import { open, readFile, rename, unlink, writeFile } from 'node:fs/promises';"),
      edit('src/util/atomic-file.ts', '  const durable = options.fsync ?? true;\n', '  const durable = options.fsync ?? true;\n  if (durable !== undefined) return writeFile(path, content, { mode });\n'),
    ],
    tests: ['util/atomic-file'],
  },
  {
    name: 'a deploy on a read-only state dir waits',
    promise: 'a deploy that starts while the disk is read-only fails at once, with a hint to check df and mount',
    edits: [
      edit(
        'src/pipeline/lock.ts',
        '    return await tryCreate(path, owner);\n  } catch (error) {\n    throw unwritable(app, path, error);\n',
        '    return await tryCreate(path, owner);\n  } catch {\n    await sleep(100, app);\n    return false;\n',
      ),
    ],
    tests: [{ file: 'pipeline/lock-readonly', only: 'read-only fails at once' }],
  },
  {
    name: 'a lock duet could not remove blocks it',
    promise: 'a lock duet could not remove (a read-only state dir) is removed once the disk is writable again',
    edits: [
      edit(
        'src/pipeline/lock.ts',
        'removeIfUnchanged(path, owner).catch(() => retryRemoval(path, owner, Math.min(delayMs * 2, RETRY_MAX_MS)));',
        'removeIfUnchanged(path, owner).catch(() => RETRY_MAX_MS);',
      ),
    ],
    tests: ['pipeline/lock-readonly'],
  },
  {
    name: 'a resumed deploy installs beside the leftover install',
    promise: 'after duet was killed mid-install, the next update of that color first stops the leftover install',
    edits: [
      edit(
        'src/instance/update.ts',
        'const leftover = await stopRecordedGroup(app.paths.stepGroup[color]);',
        'const leftover = (await Promise.resolve(undefined)) as Awaited<ReturnType<typeof stopRecordedGroup>>;',
      ),
    ],
    tests: [{ file: 'pipeline/resume-install', only: 'killed -9 during the install' }],
  },
  {
    name: 'Ctrl-C leaves the install running',
    promise: 'a Ctrl-C on duet deploy stops its install too',
    edits: [edit('src/util/run.ts', "    killGroup(pgid);\n    if (alone) process.kill(process.pid, 'SIGINT');", "    if (alone) process.kill(process.pid, 'SIGINT');")],
    tests: [{ file: 'pipeline/resume-install', only: 'Ctrl-C' }],
  },
  {
    name: 'stop-instance stops the live color',
    promise: 'stop-instance and update-instance refuse the color that answers the public port (--force overrides)',
    edits: [edit('src/pipeline/color-acts.ts', 'if (live !== color && answering !== color) return;', 'if (live !== color || answering !== color) return;')],
    tests: [{ file: 'pipeline/lock', only: 'journaled like a deploy' }],
  },
  {
    name: '--no-wait waits',
    promise: '--no-wait fails at once instead of waiting for the lock',
    edits: [edit('src/pipeline/lock.ts', 'if (!options.wait) {', 'if (!options.wait && Date.now() < 0) {')],
    tests: [{ file: 'pipeline/lock', only: 'no-wait fails at once' }],
  },
  {
    name: "an install's background job outlives it",
    promise: 'what an install or build leaves running in the background is killed when it returns',
    edits: [edit('src/util/run.ts', '    killGroup(pgid);\n    await rm(options.group!', '    await rm(options.group!')],
    tests: [{ file: 'util/run', only: 'background' }],
  },

  // --- Security model
  {
    name: 'webhook deliveries not counted',
    promise: '/metrics: duet_webhook_deliveries_total counts the deliveries received, by outcome',
    edits: [edit('src/http/server.ts', '      onDelivery: (outcome) => metrics.recordDelivery(outcome),\n', '')],
    tests: ['http/metrics'],
  },
  {
    name: 'deploys not counted',
    promise: '/metrics: duet_deploys_total and duet_deploy_duration_seconds count the deploys that finished',
    edits: [edit('src/cli/serve-runtime.ts', '  queue.addObserver(metrics);\n', '')],
    tests: ['http/metrics'],
  },
  {
    name: 'forged signatures accepted',
    promise: 'only deliveries signed with the webhook secret trigger',
    edits: [edit('src/http/signed-body.ts', 'if (!signatureMatches(options.signature', 'if (false && !signatureMatches(options.signature')],
    tests: [{ file: 'http/receiver', only: 'wrong or missing signature' }],
  },
  {
    name: 'socket_activation: the socket let go at each restart',
    promise: "with socket_activation a request of death costs the dying process's requests, never the standby",
    edits: [edit('src/instance/process-runner.ts', 'options.restarting === true && heldListener(', 'options.restarting === true && Date.now() < 0 && heldListener(')],
    tests: [{ file: 'pipeline/socket-activation', only: 'requests of death' }],
  },
  {
    name: 'journal lines acknowledged before they are on disk',
    promise: 'a 202 means the delivery is on disk: a power cut after it loses nothing',
    edits: [edit('src/util/append-log.ts', '(this.options.everyWriteDurable ? constants.O_DSYNC : 0)', '(false ? constants.O_DSYNC : 0)')],
    tests: ['util/durability'],
  },
  {
    name: 'refs with control characters accepted',
    promise: 'every ref is validated: no control or bidi characters',
    edits: [edit('src/instance/git-ref.ts', 'const invisible = INVISIBLE.exec(ref);', "const invisible = INVISIBLE.exec('');")],
    tests: ['instance/git-ref'],
  },
  {
    name: "duet's NODE_ENV reaches the app",
    promise: "NODE_ENV and anything else in duet's environment do not reach the app, its install or its build",
    edits: [edit('src/util/child-env.ts', "  'TMPDIR',\n", "  'TMPDIR',\n  'NODE_ENV',\n")],
    tests: ['instance/app-env'],
  },
  {
    name: "installs and builds get duet's whole environment",
    promise: "duet's secrets do not reach the install or the build",
    edits: [edit('src/util/run.ts', 'extendEnv: !options.forApp,', 'extendEnv: true,')],
    tests: ['instance/app-env'],
  },
  {
    name: 'tokens in clone URLs shown',
    promise: 'secrets are never logged or printed',
    edits: [edit('src/instance/checkout.ts', '  return text.replace(', '  return text || text.replace(')],
    tests: [{ file: 'instance/checkout', only: 'credentials in URLs are hidden' }],
  },
  {
    name: 'a replayed body under a new delivery id deploys again',
    promise: 'a signed delivery sent again is deduplicated by the sha256 of its body',
    edits: [
      edit(
        'src/pipeline/seen-deliveries.ts',
        'const byBody = request.bodyDigest ? seen?.get(bodyKey(request.bodyDigest)) : undefined;',
        'const byBody = request.bodyDigest ? undefined : seen?.get(bodyKey(""));',
      ),
    ],
    tests: [{ file: 'http/serve', only: 'replayed under a new delivery id' }],
  },
  {
    name: 'a branch push deploys the commit it names',
    promise: "a branch push deploys the branch's tip, so a replay cannot roll it back",
    edits: [edit('src/pipeline/deploy.ts', "if (pinnedSha && !requested.startsWith('refs/heads/')) {", 'if (pinnedSha) {')],
    tests: [{ file: 'http/serve', only: 'replayed under a new delivery id' }],
  },
  {
    name: "refs against git's rules accepted",
    promise: "every ref is validated by git's rules (no ~ ^ : ? * [ \\)",
    edits: [edit('src/instance/git-ref.ts', 'const GIT_FORBIDDEN = /[~^:?*[\\\\]/;', 'const GIT_FORBIDDEN = /(?!)/;')],
    tests: ['instance/git-ref'],
  },
  {
    name: 'deliveries forgotten after an hour',
    promise: 'a signed delivery sent again is deduplicated for 3 days',
    edits: [edit('src/pipeline/seen-deliveries.ts', 'const SEEN_FOR_MS = 3 * 24 * 60 * 60 * 1000;', 'const SEEN_FOR_MS = 60 * 60 * 1000;')],
    tests: ['pipeline/seen-deliveries'],
  },
  {
    name: 'answers without nosniff',
    promise: 'every answer carries nosniff',
    edits: [edit('src/http/server.ts', "res.set('X-Content-Type-Options', 'nosniff');", "res.set('X-Content-Type-Options-Off', 'nosniff');")],
    tests: [{ file: 'http/dashboard-guard', only: 'nosniff' }],
  },
  {
    name: 'GitHub requests not paced',
    promise: 'GitHub requests are paced within its secondary rate limits',
    edits: [edit('src/github/pacer.ts', 'intervalCap: perWindow })', 'intervalCap: perWindow * 100 })')],
    tests: [{ file: 'github/status-reporter', only: 'one at a time within writes_per_minute' }],
  },
  {
    name: 'a wrong bearer token accepted',
    promise: 'only whoever holds the API token can use the API',
    edits: [edit('src/http/auth.ts', "if (bearer !== undefined && safeEqual(bearer, token)) return 'bearer';", "if (bearer !== undefined) return 'bearer';")],
    tests: [{ file: 'http/api', only: 'needs the bearer token' }],
  },
  {
    name: 'a session cookie may deploy',
    promise: 'a deploy is asked for with the bearer token only: no page in a browser can trigger one',
    edits: [edit('src/http/auth.ts', "(credential === 'session' && SAFE_METHODS.has(req.method))", "(credential === 'session' && SAFE_METHODS.size > 0)")],
    tests: [{ file: 'http/dashboard', only: 'sign-in: a form' }],
  },
  {
    name: 'a forged session cookie accepted',
    promise: "the dashboard's cookie holds an HMAC of the token: one not made with it is refused",
    edits: [edit('src/http/auth.ts', 'return safeEqual(match[2]!, sessionMac(token, expires));', 'return token.length > 0 && match[2]!.length > 0;')],
    tests: [{ file: 'http/dashboard', only: 'sign-in: a form' }],
  },
  {
    name: "a dashboard action without the session's CSRF token",
    promise: "the dashboard's Redeploy and Roll back act only with the session's CSRF token",
    edits: [edit('src/http/auth.ts', "return expected !== undefined && typeof given === 'string' && safeEqual(given, expected);", "return expected !== undefined && typeof given === 'string';")],
    tests: [{ file: 'http/dashboard-actions', only: 'refused 403' }],
  },
  {
    name: 'sign-in not rate-limited',
    promise: 'sign-in is rate-limited',
    edits: [edit('src/http/sign-in-guard.ts', 'if (over > 0) entry.blockedUntil', 'if (over > 1e9) entry.blockedUntil')],
    tests: [{ file: 'http/dashboard-guard', only: '300 guesses' }],
  },
  {
    name: 'cross-site form posts accepted',
    promise: 'sign-in and sign-out refuse cross-site posts',
    edits: [edit('src/http/sign-in-guard.ts', 'if (isSameOrigin(req, publicHost)) return next();', "if (isSameOrigin(req, publicHost) || req.method === 'POST') return next();")],
    tests: [{ file: 'http/dashboard-guard', only: 'another site' }],
  },
  {
    name: 'dashboard pages without a CSP',
    promise: 'the dashboard has a strict CSP',
    edits: [edit('src/http/html.ts', "'Content-Security-Policy': CSP,", "'Content-Security-Policy-Off': CSP,")],
    tests: [{ file: 'http/dashboard-guard', only: 'Content-Security-Policy' }],
  },
  {
    name: 'dashboard values not escaped',
    promise: 'the dashboard escapes everything it shows',
    edits: [edit('src/http/html.ts', 'return value.replace(/[&<>"\']/g, (c) => ENTITIES[c]!);', 'return value.replace(/[&<>"\']/g, (c) => ENTITIES[c]!.slice(0, 0) + c);')],
    tests: [{ file: 'http/dashboard', only: 'escaped' }],
  },
  {
    name: 'body over 25 MB read',
    promise: 'a webhook body over 25 MB is refused with 413',
    edits: [
      edit('src/http/signed-body.ts', 'if (declared !== undefined && declared > limit) return', 'if (declared !== undefined && declared > limit * 100) return'),
      edit('src/http/signed-body.ts', 'if (end > limit) return finish(', 'if (end > limit * 100) return finish('),
    ],
    tests: [{ file: 'http/receiver', only: 'over 25 MB' }],
  },
  {
    name: 'slow bodies never time out',
    promise: 'a webhook body slower than 20 s is refused with 408',
    edits: [edit('src/http/signed-body.ts', 'const BODY_DEADLINE_MS = 20_000;', 'const BODY_DEADLINE_MS = 20 * 60_000;')],
    tests: [{ file: 'http/intake-flood', only: 'unfinished after 20 s' }],
  },
  {
    name: 'no budget for unverified bodies',
    promise: 'unverified bodies share a budget of 3 bodies and 64 MiB: 503 past it',
    edits: [edit('src/http/signed-body.ts', '{ bytes: 64 * 1024 * 1024, bodies: 3,', '{ bytes: 64 * 1024 * 1024 * 100, bodies: 300,')],
    tests: [{ file: 'http/intake-flood', only: 'charged from Content-Length' }],
  },
  {
    name: 'refusals sent at once',
    promise: 'refusals are sent after 1 to 3 s, so a flood cannot queue in front of /healthz',
    edits: [edit('src/http/refusal-hold.ts', 'this.holdMs * (0.5 + Math.random()),', '0 * this.holdMs * (0.5 + Math.random()),')],
    tests: [{ file: 'http/intake-flood', only: 'charged from Content-Length' }],
  },
  {
    name: 'app secrets not masked',
    promise: "values of the app's env_files are masked as *** in the deploy logs and every error",
    edits: [edit('src/util/mask.ts', 'if (masked.includes(value)) masked =', 'if (masked.includes(value) && value === "") masked =')],
    tests: [{ file: 'pipeline/app-secrets', only: 'refused when others can read it' }],
  },
  {
    name: 'every env_files value reaches the install and the build',
    promise: 'of the env files, the install and the build get only the build_env names',
    edits: [
      edit(
        'src/instance/app-env.ts',
        'const picked = Object.fromEntries(app.build_env.flatMap(',
        'const picked = files.values ?? Object.fromEntries(app.build_env.flatMap(',
      ),
    ],
    tests: [{ file: 'pipeline/app-secrets', only: 'refused when others can read it' }],
  },
  {
    name: 'env_files readable by others accepted',
    promise: 'duet refuses an env file that group or others may read',
    edits: [edit('src/instance/app-env.ts', '    if ((info.mode & 0o077) !== 0) {\n      throw new DuetError(`${label}', '    if ((info.mode & 0o077) !== 0 && info.mode < 0) {\n      throw new DuetError(`${label}')],
    tests: [{ file: 'pipeline/app-secrets', only: 'refused when others can read it' }],
  },
  {
    name: 'the app root readable by others',
    promise: 'a local user can read nothing in the app root',
    edits: [
      edit('src/switch/socket-permissions.ts', 'if ((mode & 0o007) !== 0) chmodSync(path, mode & ~0o007);', 'if ((mode & 0o007) !== 0) chmodSync(path, mode);'),
    ],
    tests: [{ file: 'switch/socket-permissions', only: 'reach nothing in the app root' }],
  },
  {
    name: 'port mode: the app root passable by others',
    promise: 'in port mode the app root is closed entirely',
    edits: [
      edit(
        'src/switch/socket-permissions.ts',
        'if ((mode & 0o007) !== 0) chmodSync(root, mode & ~0o007);',
        'if ((mode & 0o007) !== 0) chmodSync(root, (mode & ~0o007) | 0o001);',
      ),
    ],
    tests: [{ file: 'switch/socket-permissions', only: 'port mode: other local users' }],
  },
  {
    name: 'a reloaded duet.yml does not reach the apps of duet serve',
    promise: 'a running duet serve deploys with duet.yml as it was at its last reload (systemctl reload duet, duet install)',
    edits: [edit('src/config/reload.ts', '  current.apps = next.apps;\n', '')],
    tests: [{ file: 'cli/serve-reload' }],
  },
  {
    name: "a restarted duet serve counts the time before it as a live color's time without an answer",
    promise: 'a live color is failed over for the time without an answer duet serve saw, not for the time nobody watched',
    edits: [edit('src/pipeline/color-watch.ts', '...persisted, downSince: null };', '...persisted };')],
    tests: [{ file: 'pipeline/supervisor-clock', only: 'restarted duet serve' }],
  },
  {
    name: 'artifact digest not checked',
    promise: 'a prebuilt artifact whose SHA-256 differs from the published one is never deployed',
    edits: [edit('src/instance/artifact.ts', 'if (actual !== located.expected) {', 'if (actual !== located.expected && false) {')],
    tests: [
      { file: 'pipeline/artifact', only: 'a tampered asset' },
      { file: 'pipeline/actions-artifact', only: 'no run yet' },
    ],
  },
  {
    name: 'actions artifact expiry not checked',
    promise: 'an expired Actions artifact fails the deploy at update, named, instead of deploying what GitHub may have half-removed',
    edits: [edit('src/instance/actions-artifact.ts', 'if (artifact.expired) {', 'if (artifact.expired !== artifact.expired) {')],
    tests: [{ file: 'pipeline/actions-artifact', only: 'no run yet' }],
  },
  {
    name: 'artifact entries not checked',
    promise: 'an artifact with an entry outside artifact.contains (../, a link out) is refused, naming the entry',
    edits: [edit('src/instance/artifact-archive.ts', '  await checkArchive(file, settings);\n', '')],
    tests: [
      { file: 'instance/artifact-archive', only: 'an entry is refused' },
      { file: 'pipeline/artifact', only: 'a tampered asset' },
    ],
  },
];
