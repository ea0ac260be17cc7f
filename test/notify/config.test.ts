import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';

const withNotify = (notify: string): string =>
  ['state_dir: /tmp/duet-notify-config', `notify: ${notify}`, 'apps:', '  cafeteria:', '    clone_url: /nowhere/cafeteria.git'].join('\n');

test('notify: defaults filled in, and what cannot work is refused with what to do', () => {
  const config = parseConfig(withNotify('[{ format: slack, url_file: /etc/duet/slack-url }]'), 'duet.yml');
  assert.deepEqual(config.notify, [
    { format: 'slack', urlFile: '/etc/duet/slack-url', secretFile: undefined, on: ['failed', 'errored', 'switched_back', 'failover'], apps: undefined },
  ]);
  assert.deepEqual(parseConfig('state_dir: /tmp/x\napps:\n  cafeteria:\n    clone_url: /nowhere/c.git', 'duet.yml').notify, []);

  const refused: Array<[string, RegExp]> = [
    ['[{ format: webhook, url_file: /etc/duet/hook-url }]', /secret_file.*whsec_/],
    ['[{ format: discord, url_file: /etc/duet/url, secret_file: /etc/duet/s }]', /format discord is not signed: remove secret_file/],
    ['[{ format: slack, url: "https://hooks.slack.com/services/T/B/x" }]', /url/],
    ['[{ format: slack, url_file: relative/url }]', /absolute path/],
    ['[{ format: teams, url_file: /etc/duet/url }]', /format/],
    ['[{ format: ntfy, url_file: /etc/duet/url, on: [deployed] }]', /on/],
    ['[{ format: ntfy, url_file: /etc/duet/url, apps: [kitchen] }]', /notify\[0\]\.apps: no app "kitchen"/],
  ];
  for (const [notify, message] of refused) assert.throws(() => parseConfig(withNotify(notify), 'duet.yml'), message, notify);
});
