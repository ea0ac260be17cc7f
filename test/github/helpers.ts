import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino, type Logger } from 'pino';
import { parseConfig, type Config } from '../../src/config/load.js';
import { createGitHubClient } from '../../src/util/github-client.js';
import { GitHubStatusReporter } from '../../src/github/status-reporter.js';
import { blank, type Deploy } from '../../src/pipeline/deploy-state.js';
import { startGitHubServer, type GitHubServer } from '../support/github-server.js';
import { tempDir } from '../support/tmp.js';

/** Shared set-up of the GitHub tests: a fake API, a config pointing at it, a reporter, its log. */

export const SHA = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
export const OTHER_SHA = 'ffeeddccbbaa99887766554433221100ffeeddcc';
export const TOKEN = 'ghp_testtoken0123456789';
export const STATUS_PATH = new RegExp(`^/repos/inu-appcenter/cafeteria-server/statuses/${SHA}$`);

export function testConfig(options: { publicUrl?: string; deployments?: boolean; context?: string; writesPerMinute?: number } = {}): Config {
  const github = [`deployments: ${options.deployments ?? false}`];
  if (options.writesPerMinute) github.push(`writes_per_minute: ${options.writesPerMinute}`);
  if (options.context) github.push(`status_context: "${options.context}"`);
  const yaml = [
    'state_dir: /tmp/duet-github-test',
    ...(options.publicUrl ? [`server: { public_url: "${options.publicUrl}" }`] : []),
    `github: { ${github.join(', ')} }`,
    'apps:',
    '  cafeteria:',
    '    repo: inu-appcenter/cafeteria-server',
    '    clone_url: /nowhere/cafeteria.git',
    '  no-repo:',
    '    clone_url: /nowhere/other.git',
    '    listen: 8081',
    '    ports: { blue: 20301, green: 20302 }',
  ].join('\n');
  return parseConfig(yaml, 'test.yml');
}

export function trigger(overrides: Partial<Deploy> = {}): Deploy {
  return {
    ...blank('d-0001', 'cafeteria', 'deploy'),
    ref: 'refs/tags/v2',
    sha: SHA,
    fromSha: null,
    source: 'push',
    deliveryId: null,
    requestedBy: 'push by octocat',
    state: 'queued',
    receivedAt: '2024-05-01T10:00:00.000Z',
    resolvedSha: SHA,
    supersededBy: null,
    summary: null,
    startedAt: null,
    finishedAt: null,
    color: null,
    ...overrides,
  };
}

export interface CapturedLog {
  logger: Logger;
  lines: Array<Record<string, unknown> & { level: number; msg: string }>;
  text(): string;
}

/** A pino logger writing parsed JSON lines into memory, to assert on what was logged. */
export function captureLog(): CapturedLog {
  const lines: CapturedLog['lines'] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines, text: () => lines.map((line) => JSON.stringify(line)).join('\n') };
}

export interface Rig {
  github: GitHubServer;
  reporter: GitHubStatusReporter;
  log: CapturedLog;
  outboxPath: string;
  config: Config;
  /** A second reporter on the same outbox and server: the process after a restart. */
  restart(): GitHubStatusReporter;
}

export async function rig(
  t: TestContext,
  options: {
    prefix?: string;
    publicUrl?: string;
    deployments?: boolean;
    context?: string;
    outboxPath?: string;
    writesPerMinute?: number;
    paceWindowMs?: number;
  } = {},
): Promise<Rig> {
  // Registered before the server's hook: node:test runs `after` hooks in order, and a reporter
  // still retrying must stop before the port it talks to closes.
  const reporters: GitHubStatusReporter[] = [];
  t.after(() => Promise.all(reporters.map((reporter) => reporter.close())));
  const github = await startGitHubServer(t, options.prefix === undefined ? {} : { prefix: options.prefix });
  const config = testConfig(options);
  const log = captureLog();
  const outboxPath = options.outboxPath ?? join(await tempDir(t, 'duet-github'), 'state', 'github-outbox.ndjson');
  const make = (): GitHubStatusReporter => {
    const client = createGitHubClient({ apiUrl: github.url, token: TOKEN, retries: 0, userAgent: 'duet-test' });
    const reporter = new GitHubStatusReporter({
      config,
      client,
      logger: log.logger,
      outboxPath,
      retryBaseMs: 10,
      ...(options.paceWindowMs ? { paceWindowMs: options.paceWindowMs } : {}),
    });
    reporters.push(reporter);
    return reporter;
  };
  return { github, reporter: make(), log, outboxPath, config, restart: make };
}
