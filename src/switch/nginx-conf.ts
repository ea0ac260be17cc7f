import { unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { AppConfig, Config } from '../config/load.js';
import { CommandFailedError, DuetError } from '../errors.js';
import { fsyncDirectory, readFileIfExists, writeFileAtomic } from '../util/atomic-file.js';
import type { OutputSink } from '../util/run.js';
import { reloadNginx } from './nginx-reload.js';
import { renderTemplateFile, type TemplateValues } from './templates.js';
import { crashPoint } from '../util/crash-point.js';
import { publicTarget } from '../util/http-probe.js';
import { certificateIssued } from './tls.js';

/** One file per app, named so that `ls conf.d` shows what duet owns. */
export function appConfPath(app: AppConfig, config: Config): string {
  return join(config.nginx.confDir, `duet-${app.name}.conf`);
}

/**
 * Template lines carry `# duet:<mark>` when they exist only for some settings: `fallback` (the
 * standby's upstream, the error_page that leads to it and its location), and those of tls (see
 * activeMarks). A marked line that opens a block marks the block. Unmarked lines are always kept.
 */
const MARK = /# duet:([a-z0-9-]+)/;

/**
 * The marks whose lines the app's conf keeps. acme before its first certificate serves plain HTTP
 * (and the challenge), as nginx cannot load a server whose certificate does not exist yet.
 */
export function activeMarks(app: AppConfig): Set<string> {
  const marks = new Set<string>();
  if (app.fallback) marks.add('fallback');
  const https = certificateIssued(app);
  if (app.tls.mode !== 'off') marks.add('challenge');
  if (!https) {
    marks.add('plain');
    return marks;
  }
  marks.add('tls');
  if (app.tls.hsts_max_age_s > 0) marks.add('hsts');
  if (!app.tls.redirect_http) {
    marks.add('http-app');
    return marks;
  }
  marks.add('redirect');
  marks.add(tlsPort(app) === 443 ? 'https-443' : 'https-port');
  return marks;
}

function tlsPort(app: AppConfig): number {
  return publicTarget(app.tls.listen).port;
}

/**
 * The app's proxy config from `template` (app-port.conf.template or app-socket.conf.template),
 * with the values every conf has and the switch's own (`values`).
 */
export async function renderAppConf(app: AppConfig, template: string, values: TemplateValues): Promise<string> {
  const marks = activeMarks(app);
  const common = {
    app: app.name,
    // nginx variable names allow [A-Za-z0-9_]; app names are [a-z0-9-], so this cannot collide.
    app_var: app.name.replaceAll('-', '_'),
    listen: app.listen,
    server_names: [app.server_name, ...app.aliases],
    include_dir: app.includeDir,
    ...(marks.has('challenge') ? { acme_webroot: app.paths.acmeWebroot } : {}),
    ...(marks.has('tls') ? { tls_listen: app.tls.listen, tls_port: tlsPort(app), tls_cert: app.certificate!.cert, tls_key: app.certificate!.key } : {}),
    hsts_max_age_s: app.tls.hsts_max_age_s,
  };
  return renderTemplateFile(template, { ...common, ...values }, (text) => keepMarked(text, marks));
}

/** Only the lines without a mark, or with one of `marks` (a dropped line that opens a block takes the block). */
function keepMarked(conf: string, marks: ReadonlySet<string>): string {
  const kept: string[] = [];
  let depth = 0;
  for (const line of conf.split('\n')) {
    if (depth > 0) {
      depth += braces(line);
      continue;
    }
    const mark = MARK.exec(line)?.[1];
    if (mark === undefined || marks.has(mark)) kept.push(line);
    else depth = Math.max(braces(line), 0);
  }
  return kept.join('\n');
}

/** Blocks a line opens minus those it closes; the marker comment itself holds no brace. */
function braces(line: string): number {
  return (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
}

/** The live port duet wrote, read back from the first `server 127.0.0.1:<port>` line (the standby's comes after it). */
export function upstreamPort(conf: string): number | undefined {
  const match = /^\s*server\s+127\.0\.0\.1:(\d+)\b[^;]*;/m.exec(conf);
  return match ? Number(match[1]) : undefined;
}

/** Whether a conf proxies through a unix socket (a socket-mode file). */
export function proxiesToUnixSocket(conf: string): boolean {
  // An upstream of unix: servers, or (written by duet before the fallback) a direct proxy_pass.
  return /^\s*(?:server\s+unix:|proxy_pass\s+http:\/\/unix:)/m.test(conf);
}

interface InstallOptions {
  output?: OutputSink;
  /** Completes the hint after a failure: what nginx still does, e.g. "nginx still serves blue". */
  stillServing: string;
}

/**
 * Put `content` at `path` (undefined: remove it), then reload nginx. nginx reads every file of
 * conf.d, so a bad file left behind would also break the next unrelated reload -- and the next
 * reboot. Hence on a failure the previous content is put back before the error is thrown: the
 * disk keeps saying what nginx actually runs. Returns false, touching nothing, when the file
 * already has exactly this content.
 *
 * No separate `nginx -t` first: a reload refuses a configuration nginx cannot load, with nginx's
 * own message, and leaves the running nginx untouched (reloadNginx). The test was a second parse
 * and a second process on every switch. A reload_cmd that signals without checking
 * (a bare kill -HUP) is still safe: nginx keeps its old config, and the verify step, which asks
 * the public port, sees it and switches back.
 */
export async function installConf(path: string, content: string | undefined, config: Config, options: InstallOptions): Promise<boolean> {
  const previous = await readFileIfExists(path);
  if (previous === content) return false;
  await replace(path, content);
  crashPoint('switch:conf-written');
  const name = basename(path);
  options.output?.write(`nginx: ${content === undefined ? 'removed' : 'wrote'} ${path}\n`);
  try {
    await reloadNginx(config, options.output);
  } catch (error) {
    await replace(path, previous);
    throw reloadFailed(name, error, `the previous ${name} was restored and ${options.stillServing}`);
  }
  return true;
}

/**
 * Reload nginx for a file that already has its content: a switch killed between writing the file
 * and the reload left nginx running the one before it.
 */
export async function reloadConf(path: string, config: Config, options: InstallOptions): Promise<void> {
  options.output?.write(`nginx: ${path} is written but not what nginx serves: reloading\n`);
  try {
    await reloadNginx(config, options.output);
  } catch (error) {
    throw reloadFailed(basename(path), error, options.stillServing);
  }
}

function reloadFailed(name: string, error: unknown, still: string): DuetError {
  return new DuetError(`nginx did not reload with the new ${name}:\n${nginxMessage(error)}`, {
    step: 'switch',
    hint: `when nginx names a config error, fix the template, duet.yml or the other nginx config; when it is not running, start it (systemctl status nginx); ${still}`,
    cause: error,
  });
}

async function replace(path: string, content: string | undefined): Promise<void> {
  if (content !== undefined) return writeFileAtomic(path, content);
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return;
  }
  await fsyncDirectory(dirname(path));
}

/** nginx's own words (its stderr), not our wrapper's: that is what the operator can act on. */
export function nginxMessage(error: unknown): string {
  if (error instanceof CommandFailedError) return error.outputTail.trim() || error.message;
  return error instanceof Error ? error.message : String(error);
}
