import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { adoptConfig, planReload } from '../../src/config/reload.js';

const app = (name: string, env = 'a') => [
  `  ${name}:`,
  `    clone_url: /srv/${name}.git`,
  `    listen: 80`,
  `    server_name: ${name}.example`,
  `    ports: { blue: ${name === 'one' ? 3001 : 3011}, green: ${name === 'one' ? 3002 : 3012} }`,
  '    start: npm start',
  `    env: { MSG: ${env} }`,
];
const config = (top: string[], ...apps: string[][]) =>
  parseConfig(['state_dir: /var/lib/duet', ...top, 'apps:', ...apps.flat()].join('\n'), '/etc/duet/duet.yml');

test('a reload takes the apps as they are now, and names what was added, removed and changed', () => {
  const current = config([], app('one'), app('two'));
  const next = config([], app('one', 'b'), app('three'));
  assert.deepEqual(planReload(current, next), { apps: { added: ['three'], removed: ['two'], changed: ['one'] } });
  adoptConfig(current, next);
  assert.deepEqual([...current.apps.keys()], ['one', 'three']);
  assert.equal(current.apps.get('one')?.env.MSG, 'b');
});

test('a change of what only a restart can apply refuses the reload whole, naming the keys of duet.yml', () => {
  const current = config([], app('one'));
  const moved = parseConfig(['state_dir: /srv/duet', 'server: { listen: "127.0.0.1:9000" }', 'apps:', ...app('one', 'b')].join('\n'), '/etc/duet/duet.yml');
  assert.deepEqual(planReload(current, moved), { restartFor: ['state_dir', 'server'] });
});
