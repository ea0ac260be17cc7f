import { readdirSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Error answers (the webhook's and the API's) name no absolute path of this machine: whoever sent
 * the request, and whoever reads GitHub's Recent Deliveries, learns nothing of its layout. A path
 * under the state dir keeps its place in it (`<state_dir>/cafeteria/journal.ndjson`, which the
 * README explains), any other its file name (`…/nginx.conf`). duet serve's log keeps them whole.
 *
 * A path of this machine is one whose first directory is in `/`: the routes an error may name
 * (`GET /apps/cafeteria/status`) are not, and neither are URLs (the slashes follow a colon).
 */
const ABSOLUTE = /(?<![\w.:/~-])\/[^\s'"`<>(){}[\],;]+/g;

let rootEntries: Set<string> | undefined;

function isMachinePath(path: string): boolean {
  if (!rootEntries) {
    try {
      rootEntries = new Set(readdirSync('/'));
    } catch {
      rootEntries = new Set();
    }
  }
  return rootEntries.has(path.split('/')[1] ?? '');
}

function withoutPaths(text: string, stateDir: string): string {
  return text.replace(ABSOLUTE, (match) => {
    // A sentence goes on after a path: "in /var/lib/duet/x.ndjson: ENOSPC".
    const path = match.replace(/[.:]+$/, '');
    const rest = match.slice(path.length);
    if (path === stateDir || path.startsWith(`${stateDir}/`)) return `<state_dir>${path.slice(stateDir.length)}${rest}`;
    return isMachinePath(path) ? `…/${basename(path)}${rest}` : match;
  });
}

/** An error answer's body with withoutPaths applied to each of its texts (error, hint). */
export function errorBody<T extends Record<string, unknown>>(body: T, stateDir: string): T {
  return Object.fromEntries(Object.entries(body).map(([key, value]) => [key, typeof value === 'string' ? withoutPaths(value, stateDir) : value])) as T;
}
