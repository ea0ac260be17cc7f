import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cliPath } from '../support/duet.js';
import { tempDir } from '../support/tmp.js';
import { requireBinary, which } from './helpers.js';

/**
 * `duet install` without --root, as root, for real: useradd, chown, sudoers -- but inside a
 * private mount namespace whose /etc and /var/lib are overlays on a temp dir, so the machine
 * running the tests is left exactly as it was. Then sudo itself is asked whether the service
 * user may run exactly the configured commands and nothing else.
 */
const CONFIG = `state_dir: /var/lib/duet
runner: systemd
nginx:
  conf_dir: /etc/duet/nginx.d
  test_cmd: [sudo, -n, NGINX, -t]
  # Stands in for "-s reload": no nginx runs in the test namespace, and the reload must succeed.
  # The * is a literal file name, which sudo must not take for a wildcard.
  reload_cmd: [sudo, -n, NGINX, -t, -q, -e, "BASE/err*.log"]
apps:
  my-app:
    clone_url: https://example.invalid/app.git
`;

const SCRIPT = String.raw`
set -u
for d in etc var/lib; do
  mkdir -p "$BASE/$d/up" "$BASE/$d/wk"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$BASE/$d/up,workdir=$BASE/$d/wk" "/$d" || { echo "overlay-unsupported"; exit 0; }
done
mkdir -p /etc/duet && printf '%s' "$CONFIG" > /etc/duet/duet.yml
node "$CLI" install > "$BASE/first.txt" 2>&1; echo "first=$?"
node "$CLI" install > "$BASE/second.txt" 2>&1; echo "second=$?"
getent passwd duet | cut -d: -f1,6,7 | sed 's/^/user=/'
stat -c 'mode=%n %a %U:%G' /etc/duet /etc/duet/duet.yml /etc/duet/credentials /etc/duet/nginx.d /var/lib/duet /var/lib/duet/my-app/logs /etc/sudoers.d/duet /etc/nginx/conf.d/duet.conf /etc/systemd/system/duet.service /etc/systemd/user/duet-app@.service /var/lib/systemd/linger/duet
as_duet() { setpriv --reuid=duet --regid=duet --init-groups "$@"; }
as_duet sudo -n "$NGINX" -t > /dev/null 2>&1; echo "sudo-test=$?"
as_duet sudo -n "$NGINX" -T > /dev/null 2>&1; echo "sudo-dump=$?"
as_duet sudo -n "$NGINX" -t -c /tmp/other.conf > /dev/null 2>&1; echo "sudo-other-args=$?"
as_duet sudo -n "$NGINX" -t -q -e "$BASE/err*.log" > /dev/null 2>&1; echo "sudo-star=$?"
as_duet sudo -n "$NGINX" -t -q -e "$BASE/errXYZ.log" > /dev/null 2>&1; echo "sudo-star-glob=$?"
as_duet sudo -n -l "$SYSTEMCTL" start 'duet-app@my\x2dapp-blue.service' > /dev/null 2>&1; echo "sudo-start=$?"
`;

test('install for real (useradd, chown, sudoers) in a throwaway mount namespace', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root (useradd, chown, mount)');
    return;
  }
  for (const [bin, pkg] of [
    ['unshare', 'util-linux'],
    ['setpriv', 'util-linux'],
    ['sudo', 'sudo'],
    ['useradd', 'passwd'],
    ['nginx', 'nginx-light'],
  ] as const) {
    if (!requireBinary(t, bin, pkg)) return;
  }
  const base = await tempDir(t, 'duet-real');
  const nginx = which('nginx')!;
  const systemctl = which('systemctl') ?? '/usr/bin/systemctl';
  const result = await execa('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', SCRIPT], {
    reject: false,
    all: true,
    stdin: 'ignore',
    env: { BASE: base, CLI: cliPath(), NGINX: nginx, SYSTEMCTL: systemctl, CONFIG: CONFIG.replaceAll('NGINX', nginx).replaceAll('BASE', base) },
    extendEnv: true,
    timeout: 60_000,
  });
  const out = String(result.all);
  if (/overlay-unsupported|unshare failed|Operation not permitted/.test(out)) {
    t.diagnostic(`mount namespaces or overlayfs are not available here; the real install was not tested:\n${out}`);
    t.skip('no mount namespace / overlayfs');
    return;
  }
  const value = (key: string): string[] =>
    out
      .split('\n')
      .filter((line) => line.startsWith(`${key}=`))
      .map((line) => line.slice(key.length + 1));
  const first = await readLog(base, 'first.txt');
  const second = await readLog(base, 'second.txt');
  assert.deepEqual(value('first'), ['0'], first);
  assert.deepEqual(value('second'), ['0'], second);
  assert.match(first, /done +useradd --system/);
  assert.match(first, /done +sudo -n \S+nginx -t/, 'the new site was tested by nginx, as root');
  assert.doesNotMatch(second, /^ {2}(create|update|chmod|chown|remove|run) /m, second);
  assert.deepEqual(value('user'), ['duet:/var/lib/duet:/usr/sbin/nologin']);
  assert.deepEqual(value('mode'), [
    '/etc/duet 750 root:duet',
    '/etc/duet/duet.yml 640 root:duet',
    '/etc/duet/credentials 700 root:root',
    '/etc/duet/nginx.d 750 duet:duet',
    '/var/lib/duet 750 duet:duet',
    '/var/lib/duet/my-app/logs 750 duet:duet',
    '/etc/sudoers.d/duet 440 root:root',
    '/etc/nginx/conf.d/duet.conf 644 root:root',
    '/etc/systemd/system/duet.service 644 root:root',
    '/etc/systemd/user/duet-app@.service 644 root:root',
    '/var/lib/systemd/linger/duet 644 root:root',
  ]);
  // sudo allows exactly the configured commands: not -T, not other arguments.
  assert.deepEqual(value('sudo-test'), ['0'], out);
  assert.deepEqual(value('sudo-dump'), ['1'], out);
  assert.deepEqual(value('sudo-other-args'), ['1'], out);
  assert.deepEqual(value('sudo-star'), ['0'], out);
  assert.deepEqual(value('sudo-star-glob'), ['1'], out);
  assert.deepEqual(value('sudo-start'), ['1'], 'runner: systemd needs no sudo: the app units are user units');
});

function readLog(base: string, name: string): Promise<string> {
  return readFile(join(base, name), 'utf8').catch(() => '(missing)');
}
