import type { Logger } from 'pino';
import { loadConfig, type Config } from '../config/load.js';
import { adoptConfig, planReload, servedConfigPath, type ServedConfig } from '../config/reload.js';
import { identify } from '../instance/process-identity.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { DuetError } from '../errors.js';
import type { Supervisor } from '../pipeline/supervision-loop.js';

/**
 * SIGHUP (`systemctl reload duet`, which `duet install` runs): read duet.yml again and apply it
 * to the running duet serve, as nginx does with its own file. A file that does not load, or that
 * changes what only a restart can (server, state_dir, ...), is refused whole and said loudly;
 * duet serve goes on with the config it has. One reload at a time, in the order they came.
 */
export async function reloadOnHangup(config: Config, supervisor: Supervisor, logger: Logger): Promise<() => void> {
  await recordLoaded(config, logger);
  let chain = Promise.resolve();
  const onHangup = () => {
    // A reload that fails midway is said, never an unhandled rejection that stops duet serve.
    chain = chain
      .then(() => reload(config, supervisor, logger))
      .catch((error: unknown) => {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'duet.yml reload failed');
      });
  };
  process.on('SIGHUP', onHangup);
  return () => process.off('SIGHUP', onHangup);
}

async function reload(config: Config, supervisor: Supervisor, logger: Logger): Promise<void> {
  let next: Config;
  try {
    next = await loadConfig(config.file);
  } catch (error) {
    const hint = error instanceof DuetError ? error.hint : undefined;
    logger.error(
      { file: config.file, err: (error as Error).message, hint },
      `duet.yml NOT reloaded: ${(error as Error).message}; duet serve goes on with the config it had`,
    );
    return;
  }
  const plan = planReload(config, next);
  if ('restartFor' in plan) {
    logger.error(
      { file: config.file, restartFor: plan.restartFor },
      `duet.yml NOT reloaded: ${plan.restartFor.join(', ')} changed, which takes a restart (systemctl restart duet); duet serve goes on with the config it had`,
    );
    return;
  }
  adoptConfig(config, next);
  await supervisor.reconfigure(config);
  await recordLoaded(config, logger);
  logger.info({ file: config.file, ...plan.apps }, 'duet.yml reloaded');
}

/** Which duet.yml this duet serve runs, for `duet install` and `duet doctor` (reload.ts). */
async function recordLoaded(config: Config, logger: Logger): Promise<void> {
  try {
    const me = await identify(process.pid);
    if (!me) throw new Error('cannot read this process in /proc');
    const served: ServedConfig = { digest: config.digest, pid: me.pid, startTime: me.startTime };
    await writeFileAtomic(servedConfigPath(config), `${JSON.stringify(served)}\n`);
  } catch (error) {
    // Only what install and doctor tell is at stake, never what serve does.
    logger.warn({ err: (error as Error).message }, 'could not record which duet.yml duet serve runs');
  }
}
