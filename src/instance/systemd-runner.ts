import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { DuetError } from '../errors.js';
import { appSettings, startedWith, type AppSettings } from './app-env.js';
import { claimEndpoint, releaseEndpoint } from './endpoint.js';
import { readPidfile, removePidfile, writePidfile, type InstanceRecord, type Revision, type StopOutcome } from './pidfile.js';
import type { ExitStatus } from './process-runner.js';
import { identify } from './process-identity.js';
import type { Runner } from './runner.js';
import { maskedByRunner } from './app-secrets.js';
import { startUnit, stopUnit, unitLogHint, unitLogTail, unitScope, unitState, waitForUserManager } from './systemd-unit.js';

/** `runner: systemd`: each color a unit of the service user's systemd (systemd-unit.ts), which restarts it. */
export class SystemdRunner implements Runner {
  readonly restartsCrashed = true;

  constructor(private readonly app: AppConfig) {}

  async running(color: Color): Promise<InstanceRecord | undefined> {
    const state = await unitState(this.app, color);
    const identity = state.active && state.pid !== undefined ? await identify(state.pid) : undefined;
    if (!identity) return undefined;
    // The pid is systemd's (it changes when systemd restarts a crashed color); the revision is
    // what duet recorded when it started the unit.
    const record = await readPidfile(this.app.paths.pidfile[color]);
    const merged: InstanceRecord = { color, sha: 'unknown', ref: 'started outside duet', startedAt: '', ...record, ...identity };
    // A process systemd restarted did not go live; the one that did is gone.
    if (record?.pid !== identity.pid) delete merged.liveSince;
    return merged;
  }

  async start(color: Color, revision: Revision, given?: AppSettings): Promise<InstanceRecord> {
    const running = await this.running(color);
    if (running) return running;
    // Read at each start: the unit gets the env files as they are now.
    const settings = given ?? (await appSettings(this.app, 'start'));
    await claimEndpoint(this.app, color);
    const state = await startUnit(this.app, color, revision, settings.files);
    const identity = state.pid === undefined ? undefined : await identify(state.pid);
    if (!identity) {
      throw new DuetError(`${color} exited immediately after start (${state.activeState}/${state.subState})`, {
        step: 'start',
        hint: `read its output: ${unitLogHint(this.app, color)}`,
      });
    }
    const record: InstanceRecord = { ...identity, color, sha: revision.sha, ref: revision.ref, startedAt: new Date().toISOString(), ...startedWith(settings) };
    await writePidfile(this.app.paths.pidfile[color], record);
    return record;
  }

  async stop(color: Color, options: { restarting?: boolean } = {}): Promise<StopOutcome> {
    const running = await this.running(color);
    await stopUnit(this.app, color, options);
    await removePidfile(this.app.paths.pidfile[color]);
    // The socket unit holds the socket across a restart (systemd-unit.ts leaves it listening).
    await releaseEndpoint(this.app, color, options.restarting === true && this.app.socket_activation);
    return running ? 'stopped' : 'not-running';
  }

  /**
   * With socket_activation the service has no start limit (setup/units.ts): a version that cannot
   * start would restart every 100 ms for good. Both units stop; the pidfile stays.
   */
  async endRestarts(color: Color): Promise<void> {
    await stopUnit(this.app, color);
  }

  /** systemd's record of the unit's last main process, if it is this instance. */
  async exitStatus(instance: InstanceRecord): Promise<ExitStatus | undefined> {
    const last = (await unitState(this.app, instance.color as Color).catch(() => undefined))?.lastExit;
    return last?.pid === instance.pid ? { code: last.code, signal: last.signal } : undefined;
  }

  /** The unit's process is systemd's child, not duet's: its exit is only seen to be gone. */
  whenExited(): undefined {
    return undefined;
  }

  async ready(): Promise<void> {
    if (unitScope(this.app) === 'user') await waitForUserManager();
  }

  /** With app_user duet does not know the env files' values: their runner masks the lines. */
  async outputTail(color: Color): Promise<string> {
    return maskedByRunner(this.app, await unitLogTail(this.app, color), 'health');
  }

  outputHint(color: Color): string {
    return unitLogHint(this.app, color);
  }
}
