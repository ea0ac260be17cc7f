import { basename } from 'node:path';
import type { AppConfig } from '../config/load.js';
import { colors } from '../config/schema.js';
import { runnerOf } from '../instance/runner.js';
import { probe, publicTarget } from '../util/http-probe.js';
import { capture, fail, oneLine, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { describeHolders, portHolders } from './port-holders.js';

/** The program an argv runs, past `sudo` and its options. */
function programOf(argv: readonly string[]): string {
  let i = 0;
  if (basename(argv[0] ?? '') === 'sudo') {
    i = 1;
    while (i < argv.length && argv[i]!.startsWith('-')) i += 1;
  }
  return argv[i] ?? 'nginx';
}

export async function checkNginxInstalled(ctx: DoctorContext): Promise<CheckResult> {
  const nginx = ctx.setup.config.nginx;
  const binary = nginx.managed ? nginx.binary : programOf(nginx.testCmd);
  const { code, output } = await capture([binary, '-v']);
  if (code !== 0)
    return fail(
      'nginx installed',
      `${binary} does not run (${oneLine(output, 1)})`,
      'apt-get install nginx-light (or nginx), or set nginx.binary / nginx.test_cmd to its path',
    );
  return pass('nginx installed', oneLine(output, 1).replace(/^nginx version: /, ''));
}

export async function checkNginxTest(ctx: DoctorContext): Promise<CheckResult> {
  const { testCmd, managed } = ctx.setup.config.nginx;
  const { code, output } = await capture(testCmd);
  const shown = testCmd.join(' ');
  if (code === 0) return pass('nginx config test', `${shown} passes`);
  const fix = managed
    ? `start the managed nginx (duet bootup) or fix the file nginx names; then ${shown}`
    : `fix the file nginx names, then run ${shown}${testCmd[0] === 'sudo' ? ' (as root or the service user)' : ''}`;
  return fail('nginx config test', `${shown} fails: ${oneLine(output)}`, fix);
}

/**
 * Is duet's include directory part of what nginx loads? `nginx -T` prints the whole config with
 * a "# configuration file <path>:" line per file, so either an app file from the directory shows
 * up, or an `include <dir>/...` directive does (before the first deploy the directory is empty).
 * The dump command is the test command with -t turned into -T.
 */
export async function checkNginxInclude(ctx: DoctorContext): Promise<CheckResult> {
  const { testCmd, confDir } = ctx.setup.config.nginx;
  if (!testCmd.includes('-t'))
    return fail(
      'nginx include',
      `cannot dump the config: nginx.test_cmd (${testCmd.join(' ')}) has no -t to turn into -T`,
      'check by hand: nginx -T | grep duet',
    );
  const dump = testCmd.map((arg) => (arg === '-t' ? '-T' : arg)).filter((arg) => arg !== '-q');
  const { code, output } = await capture(dump);
  if (code !== 0)
    return fail('nginx include', `${dump.join(' ')} fails: ${oneLine(output)}`, 'fix the nginx config test first; run doctor as root (sudo duet doctor)');
  const dir = confDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const fileListed = new RegExp(`^# configuration file ${dir}/[^\\n]*:$`, 'm').test(output);
  const includeListed = new RegExp(`^\\s*include\\s+${dir}/[^;]*;`, 'm').test(output);
  if (fileListed || includeListed) return pass('nginx include', `nginx loads ${confDir}/*.conf`);
  return fail(
    'nginx include',
    `nothing in nginx's config includes ${confDir}: switches would change nothing`,
    `run duet install (it writes /etc/nginx/conf.d/duet.conf), or add "include ${confDir}/*.conf;" inside http {}`,
  );
}

/**
 * The public port may be free (nothing deployed yet) or held by nginx; each color's port may be
 * free or held by that color's own instance, found by process group: duet starts every instance
 * as the leader of its own group, so whatever `npm start` spawned is in it.
 */
export async function checkPorts(_ctx: DoctorContext, app: AppConfig): Promise<CheckResult> {
  const name = `ports ${app.name}`;
  const found: string[] = [];
  const problems: string[] = [];
  const listen = publicTarget(app.listen);
  const pub = await portHolders(listen.port);
  if (!pub.listening) {
    found.push(`public ${listen.port} free`);
  } else if (pub.visible) {
    const strangers = pub.holders.filter((h) => h.comm !== 'nginx');
    if (strangers.length) problems.push(`public port ${listen.port} is held by ${describeHolders(strangers)}, not nginx`);
    else found.push(`public ${listen.port} nginx`);
  } else {
    // Without root the holder is hidden; an nginx says so in its Server header.
    const answer = await probe(listen, '/', 2000);
    const server = String(answer?.headers.server ?? '');
    if (server.startsWith('nginx')) found.push(`public ${listen.port} nginx`);
    else problems.push(`public port ${listen.port} is held by a process that is not nginx (${server || 'no HTTP answer'})`);
  }
  if (app.switch === 'port') {
    for (const color of colors) {
      const port = app.ports[color];
      const held = await portHolders(port);
      if (!held.listening) {
        found.push(`${color} ${port} free`);
        continue;
      }
      const instance = await runnerOf(app).running(color);
      const strangers = held.holders.filter((h) => h.pgid !== instance?.pid);
      if (!instance) {
        problems.push(`${color} port ${port} is taken by ${held.holders.length ? describeHolders(held.holders) : 'a process duet did not start'}`);
      } else if (strangers.length) {
        problems.push(`${color} port ${port} is held by ${describeHolders(strangers)}, not by duet's ${color} instance (pid ${instance.pid})`);
      } else {
        found.push(`${color} ${port} duet's ${color} (pid ${instance.pid})`);
      }
    }
  }
  if (problems.length === 0) return pass(name, found.join(', '));
  const port = /port (\d+)/.exec(problems[0]!)?.[1];
  return fail(name, problems.join('; '), `find it with \`ss -ltnp 'sport = :${port}'\` and stop it, or give ${app.name} other ports in duet.yml`);
}
