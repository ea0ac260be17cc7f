import { ConfigError } from '../errors.js';
import type { RawConfig } from './schema.js';

/**
 * The ports of duet.yml: each color's port is its own, while a public port (listen, tls.listen)
 * may serve several apps, as nginx does by name: every app on it names its server exactly
 * (server_name, not _ nor a wildcard, and aliases) with names no other app there has, and all of
 * them speak the same protocol on it (plain HTTP, or HTTPS).
 */

interface PublicUse {
  app: string;
  key: string;
  scheme: 'http' | 'https';
  names: string[];
}

type RawApp = RawConfig['apps'][string];

function portOf(listen: number | string): number {
  return typeof listen === 'number' ? listen : Number(/:(\d+)$/.exec(listen)?.[1]);
}

function publicUses(name: string, app: RawApp): Array<[number, PublicUse]> {
  const names = [app.server_name, ...app.aliases];
  const uses: Array<[number, PublicUse]> = [[portOf(app.listen), { app: name, key: `apps.${name}.listen`, scheme: 'http', names }]];
  if (app.tls.mode !== 'off') uses.push([portOf(app.tls.listen), { app: name, key: `apps.${name}.tls.listen`, scheme: 'https', names }]);
  return uses;
}

function sharingProblem(port: number, use: PublicUse, others: PublicUse[]): string | undefined {
  const first = others[0]!;
  if (others.some((other) => other.app === use.app)) return `port ${port} is already ${first.key}`;
  if (first.scheme !== use.scheme) return `port ${port} is ${first.key} (${first.scheme}), and one port cannot serve both plain HTTP and HTTPS`;
  const vague = [use, ...others].find((u) => u.names[0] === '_' || u.names.some((n) => n.includes('*')));
  if (vague) {
    return `port ${port} is shared with ${first.key}, so each app on it needs a server_name of its own (apps.${vague.app}.server_name is ${vague.names[0]}; not _ nor a wildcard)`;
  }
  for (const other of others) {
    const both = use.names.find((n) => other.names.includes(n));
    if (both) return `port ${port} is shared with ${other.key}, and both name ${both}: nginx could not tell their requests apart`;
  }
  return undefined;
}

export function checkPorts(raw: RawConfig, file: string): void {
  const colors = new Map<number, string>();
  const shared = new Map<number, PublicUse[]>();
  for (const [name, app] of Object.entries(raw.apps)) {
    for (const color of ['blue', 'green'] as const) {
      const port = app.ports[color];
      const previous = colors.get(port);
      if (previous) throw new ConfigError(`${file}: apps.${name}.ports.${color}: port ${port} is already used by ${previous}`);
      colors.set(port, `apps.${name}.ports.${color}`);
    }
  }
  for (const [name, app] of Object.entries(raw.apps)) {
    for (const [port, use] of publicUses(name, app)) {
      const color = colors.get(port);
      if (color) throw new ConfigError(`${file}: ${use.key}: port ${port} is already used by ${color}`);
      const others = shared.get(port) ?? [];
      const problem = others.length > 0 ? sharingProblem(port, use, others) : undefined;
      if (problem) throw new ConfigError(`${file}: ${use.key}: ${problem}`, 'see docs/configuration.md, "Several apps on one port"');
      shared.set(port, [...others, use]);
    }
  }
}
