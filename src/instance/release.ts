import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import type { OutputSink } from '../util/run.js';
import { stopRecordedGroup } from '../util/step-group.js';
import { appProcessEnv, type AppSettings } from './app-env.js';
import { runBuildShell } from './build-step.js';
import type { Revision } from './pidfile.js';

/**
 * The app's `release` command (its database migrations), run in the new color's checkout after
 * the update and before the start, so the new code never starts against an old schema. It gets
 * the environment the app starts with, plus DUET_RELEASE=1 and DUET_PREVIOUS_REVISION (the commit
 * the live color runs, empty when none). Like the build: at build priority (build-step.ts), in the color's recorded step group, as
 * app_user through the step socket where one is set. Past release_timeout_s its whole group gets
 * SIGTERM, and SIGKILL stop_timeout_s later.
 */
export async function runRelease(
  app: AppConfig,
  color: Color,
  revision: Revision,
  settings: AppSettings,
  previous: string | undefined,
  output?: OutputSink,
): Promise<void> {
  if (!app.release) return;
  // A release a killed duet left running would race this one against the same database.
  const leftover = await stopRecordedGroup(app.paths.stepGroup[color], app.stop_timeout_s * 1000);
  if (leftover)
    output?.write(`duet: stopped \`${leftover.command}\` (process group ${leftover.pgid}, since ${leftover.since}), left running by a duet that died\n`);
  output?.write(`$ ${app.release}\n`);
  await runBuildShell(app, app.release, {
    step: 'release',
    cwd: app.paths.checkout[color],
    env: { ...appProcessEnv(app, color, revision, settings.files), DUET_PREVIOUS_REVISION: previous ?? '', DUET_RELEASE: '1' },
    output,
    group: app.paths.stepGroup[color],
    timeoutMs: app.release_timeout_s * 1000,
    graceMs: app.stop_timeout_s * 1000,
    hint: `the release of ${revision.ref} failed in ${app.paths.checkout[color]}; live traffic is untouched and nothing was retried: fix it (a migration must be idempotent: it runs again on the next deploy) and deploy again`,
  });
}
