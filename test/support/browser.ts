import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import type { Browser } from 'playwright-core';

/**
 * Debian's headless Chromium through playwright-core, closed when the test ends; undefined (the
 * test skipped, which CI refuses) where it is not installed: scripts/install-deps --for-tests.
 */
export async function launchChromium(t: TestContext): Promise<Browser | undefined> {
  if (!existsSync('/usr/bin/chromium')) {
    t.skip('chromium not installed: apt-get install chromium');
    return undefined;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(() => browser.close());
  return browser;
}
