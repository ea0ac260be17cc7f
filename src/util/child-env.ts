/**
 * What of duet's own environment reaches code that is not duet's: the app, its install and its
 * build (npm scripts run whatever a dependency ships). duet's environment holds its secrets
 * (DUET_WEBHOOK_SECRET, DUET_API_TOKEN, DUET_GITHUB_TOKEN, their *_FILE paths) and whatever its
 * unit or shell set; none of that is the app's business. Only what a program needs to run, find
 * its tools and reach the network passes; the app's own `env` in duet.yml is added on top.
 */
const PASSED = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  // TLS and proxies: an install behind a corporate proxy or with a private CA must still work.
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
]);

/** Locale settings, and the operator's own npm and corepack settings (a registry, a cache). */
const PASSED_PREFIXES = ['LC_', 'npm_config_', 'NPM_CONFIG_', 'COREPACK_'];

export function inheritedEnv(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined) continue;
    if (PASSED.has(name) || PASSED_PREFIXES.some((prefix) => name.startsWith(prefix))) env[name] = value;
  }
  return env;
}
