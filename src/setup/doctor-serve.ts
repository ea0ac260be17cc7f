import { readServedConfig } from '../config/reload.js';
import { isSameProcessAlive } from '../instance/process-identity.js';
import { fail, pass, type CheckResult, type DoctorContext } from './doctor-context.js';

/**
 * A running duet serve reads duet.yml when it starts and when told to (SIGHUP): an edit since
 * then reaches the CLI at once, and webhooks only after a reload.
 */
export async function checkServeConfig(ctx: DoctorContext): Promise<CheckResult> {
  const { config } = ctx.setup;
  const served = await readServedConfig(config);
  if (!served || !(await isSameProcessAlive(served))) return pass('duet serve', 'not running on this state dir');
  if (served.digest === config.digest) return pass('duet serve', `pid ${served.pid} runs this ${config.file}`);
  return fail(
    'duet serve',
    `pid ${served.pid} runs an older ${config.file}: webhooks and the API deploy with that one`,
    `sudo systemctl reload duet (or kill -HUP ${served.pid}); journalctl -u duet says whether it took the file`,
  );
}
