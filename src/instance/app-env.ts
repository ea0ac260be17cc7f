import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { endpointOf, endpointText } from './endpoint.js';

/**
 * What the app's process is told, whichever runner starts it: its `env` from duet.yml, where to
 * listen, and what it runs. Its release command gets exactly this too (release.ts), so a
 * migration connects to the database the new version will.
 */
export function instanceEnv(app: AppConfig, color: Color, revision: { sha: string; ref: string }): Record<string, string> {
  return {
    ...app.env,
    PORT: endpointText(endpointOf(app, color)),
    HOST: '127.0.0.1',
    DUET_COLOR: color,
    DUET_REVISION: revision.sha,
    DUET_REF: revision.ref,
  };
}
