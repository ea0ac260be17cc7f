import { serveStep } from '../../util/step-runner.js';
import type { Command } from '../command.js';

/**
 * Not for people: what duet-step@.service runs, as app_user, for each connection duet makes to
 * duet-step.socket. Its stdin and stdout are that connection (see src/util/step-protocol.ts).
 */
export const stepRunner: Command = {
  name: 'step-runner',
  summary: '(internal, app_user) run one install or build for duet, as duet-step@.service does',
  usage: 'step-runner   (stdin and stdout: a connection to duet-step.socket)',
  async run() {
    return serveStep(process.stdin, process.stdout);
  },
};
