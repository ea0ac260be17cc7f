import type { Scope } from './lib/cleanup.js';
import { isInterrupted } from './lib/cleanup.js';
import { log } from './lib/log.js';
import { CRASH_AFTER_MS, duetFails, naiveFails, pm2Fails, WATCH_S, type FailsResult, type FailsSystem } from './scenarios/app-fails.js';
import { runBreakdown } from './scenarios/breakdown.js';
import { duetLoadRows, naiveRows, pm2Rows, reloadAmidDeployRows, reloadRows } from './scenarios/deploy-load.js';
import { runBuildIsolation } from './scenarios/build-isolation.js';
import { tlsRows } from './scenarios/tls-reload.js';
import { runArtifactUpdate } from './scenarios/artifact-update.js';
import { runInstallReuse } from './scenarios/install-reuse.js';
import { runWebhook } from './scenarios/webhook.js';
import { mustCli } from './lib/duet-env.js';
import { breakdownOnly, FAILS, ISOLATION_RATE, KIND_GROUPS, quick, settings, WEBHOOK } from './settings.js';
import type { Bench, SetupName, Setups } from './setups.js';
import { DUET_ACTIVATION, DUET_PORT, DUET_SOCKET, NAIVE_SETUP, PM2_CLUSTER } from './systems.js';

/**
 * The measured parts of a run, in run order: what each needs prepared, and what it measures into
 * the results (table.ts renders them as bench/README.md's sections). `--only webhook,port` runs a
 * subset, to iterate on one.
 */
export interface Part {
  name: string;
  title: string;
  needs: SetupName[];
  run(setups: Setups, scopes: Record<SetupName, Scope>, bench: Bench): Promise<void>;
}

export const PARTS: Part[] = [
  {
    name: 'socket',
    title: 'duet, switch: socket: where a deploy goes, then deploys under load',
    needs: ['socket'],
    async run({ socket }, scopes, { results, loadSettings }) {
      const { env, breakdown, load, servePort } = socket;
      results.breakdown.socket = await runBreakdown(env, 'socket', breakdown, 'w0', {
        scope: scopes.socket,
        port: servePort,
        rounds: settings.apiRollbackRounds,
      });
      if (breakdownOnly) return;
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await duetLoadRows(env, DUET_SOCKET, load[i]!, kinds, loadSettings)));
    },
  },
  {
    name: 'port',
    title: 'duet, switch: port: where a deploy goes, deploys under load; nginx -s reload',
    needs: ['port'],
    async run({ port }, scopes, { results, loadSettings }) {
      const { env, breakdown, load, amid, servePort } = port;
      results.breakdown.port = await runBreakdown(env, 'port', breakdown, 'w0', { scope: scopes.port, port: servePort, rounds: settings.apiRollbackRounds });
      if (breakdownOnly) return;
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await duetLoadRows(env, DUET_PORT, load[i]!, kinds, loadSettings)));
      // As many bare reloads as duet switched, each under its own load like duet's deploys.
      for (const kinds of KIND_GROUPS) results.load.push(...(await reloadRows(env, settings.deploysPerRow, kinds, loadSettings)));
      // The same reloads amid the same deploy work (duet's update-instance and start-instance):
      // the reference for duet's keep-alive errors (the goal for Connection: close is 0 anyway).
      results.load.push(...(await reloadAmidDeployRows(env, amid[0]!, KIND_GROUPS[0]!, loadSettings)));
    },
  },
  {
    name: 'tls',
    title: 'duet reload-tls under HTTPS load; nginx -s reload over HTTPS',
    needs: ['tls'],
    async run({ tls }, _scopes, { results, loadSettings }) {
      results.load.push(...(await tlsRows(tls, KIND_GROUPS, settings.deploysPerRow, loadSettings)));
    },
  },
  {
    name: 'baseline',
    title: 'naive in-place restart; pm2 reload (cluster mode)',
    needs: ['baseline'],
    async run({ baseline: { baseline, tags } }, _scopes, { results, loadSettings }) {
      await baseline.naive.start();
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await naiveRows(baseline, tags.naive[i]!, kinds, loadSettings)));
      await baseline.naive.stop();
      log('  starting pm2 (cluster mode, 2 instances)');
      await baseline.pm2.start();
      for (const [i, kinds] of KIND_GROUPS.entries()) results.load.push(...(await pm2Rows(baseline, tags.pm2[i]!, kinds, loadSettings)));
      await baseline.pm2.stop();
    },
  },
  {
    name: 'install',
    title: 'deploying again with the same dependencies (switch: port)',
    needs: ['port'],
    async run({ port }, _scopes, { results }) {
      results.install = await runInstallReuse(port.env, settings.installRounds);
    },
  },
  {
    name: 'webhook',
    title: 'webhook intake: duet serve and webhook (adnanh); footprint',
    needs: ['socket'],
    async run({ socket: { env, servePort } }, scopes, { root, results, webhookScript }) {
      // The pushes name the tip of main: make sure that is what runs, so their deploys are no-ops.
      const main = await env.setup.repo.revParse('main');
      const last = (await env.records()).filter((r) => r.outcome === 'success').at(-1);
      if (last?.resolvedSha !== main) await mustCli(env, ['deploy', '--ref', 'main']);
      const intake = {
        ...{ rates: settings.rates, stepMs: settings.stepMs, goalStepMs: settings.goalStepMs, maxDurationS: settings.maxDurationS },
        ...{ maxConnections: WEBHOOK.connections, burst: WEBHOOK.burst, wrkScript: webhookScript, idleWaitMs: settings.idleWaitMs, settleAfterLast: !quick },
      };
      results.webhook = await runWebhook(scopes.socket, root, env, intake, servePort);
    },
  },
  {
    name: 'fails',
    title: 'the app fails: kill -9 of the live instance under load; a version that crashes after going live',
    needs: ['fails'],
    async run({ fails: setups }, scopes, { results }) {
      const fails: FailsResult = { crashAfterMs: CRASH_AFTER_MS, watchS: WATCH_S, settings: FAILS, systems: [] };
      results.fails = fails;
      // One system's failure is recorded (its cells show n/a) and the others are still measured.
      const measure = async (system: string, work: () => Promise<FailsSystem>): Promise<void> => {
        if (isInterrupted()) return;
        log(`  -- ${system}`);
        try {
          fails.systems.push(await work());
        } catch (error) {
          if (isInterrupted()) return;
          const message = error instanceof Error ? error.message : String(error);
          results.failures[`fails, ${system}`] = message.split('\n')[0]!;
          log(`  FAILED: ${message}`);
        }
      };
      await measure(DUET_SOCKET, () => duetFails(scopes.fails, setups.socket, FAILS));
      await measure(DUET_PORT, () => duetFails(scopes.fails, setups.port, FAILS));
      await measure(DUET_ACTIVATION, () => duetFails(scopes.fails, setups.activation, FAILS));
      await measure(PM2_CLUSTER, () => pm2Fails(setups.baseline, PM2_CLUSTER, FAILS));
      await measure(NAIVE_SETUP, () => naiveFails(setups.baseline, NAIVE_SETUP, FAILS));
    },
  },
  {
    name: 'isolation',
    title: 'a build next to the live app: fresh npm ci + tsc beside it, plain and with duet isolation',
    needs: ['isolation'],
    async run({ isolation }, _scopes, { root, results }) {
      results.isolation = await runBuildIsolation(root, isolation, { ratePerS: ISOLATION_RATE, rounds: quick ? 1 : 2 });
    },
  },
  {
    name: 'artifact',
    title: "an artifact deploy's update against the same release built on the server (bench/nest-app)",
    needs: ['artifact'],
    async run({ artifact }, _scopes, { root, results }) {
      results.artifact = await runArtifactUpdate(root, artifact, settings.artifactRounds);
    },
  },
];
