import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { STEP_SOCKET, appStepSocket } from '../config/paths.js';
import type { AppConfig } from '../config/load.js';
import { colors } from '../config/schema.js';
import { appSocketUnitName, appUnitName } from '../instance/systemd-unit.js';
import { envFileCredential } from '../util/step-env-files.js';
import {
  APP_SOCKET_TEMPLATE,
  APP_UNIT_TEMPLATE,
  BOOTUP_UNIT,
  SERVICE_UNIT,
  UNIT_DIR,
  USER_UNIT_DIR,
  duetCommand,
  needsRootCommands,
  underRoot,
  type InstallLayout,
} from './layout.js';
import { renderSystemdTemplate, systemdArg, systemdPath } from './render.js';
import type { SetupConfig } from './settings.js';

export interface UnitFile {
  name: string;
  /** The machine path: /etc/systemd/system/<name>, or /etc/systemd/user/ for the app template. */
  path: string;
  content: string;
}

/** Paths duet writes at run time: the state dir, and the include dir of the system nginx. */
export function writablePaths(setup: SetupConfig): string[] {
  const { config } = setup;
  const paths = [config.stateDir];
  // A managed nginx's conf.d is inside the state dir already.
  if (!config.nginx.managed && !paths.includes(config.nginx.confDir)) paths.push(config.nginx.confDir);
  return paths;
}

/**
 * The units for this config: duet.service and duet-bootup.service always, duet-app@.service with
 * `runner: systemd` (a user unit, or a system unit with app_user). The optional secrets are loaded only when their files exist under `root`,
 * because systemd refuses to start a unit whose LoadCredential= file is missing: adding a token
 * later means running `duet install` again (doctor says so).
 */
export async function renderUnits(setup: SetupConfig, layout: InstallLayout, root: string): Promise<UnitFile[]> {
  const { node, main, nodeFlags } = duetCommand();
  const exec = [node, ...nodeFlags, main, '--config', layout.configFile].map(systemdArg).join(' ');
  const socketDirs = [...setup.config.apps.values()].filter((app) => app.switch === 'socket').map((app) => systemdPath(dirname(app.paths.socket.blue)));
  const has = (file: string): boolean => existsSync(underRoot(root, join(layout.credentialsDir, file)));
  const values = {
    user: setup.user,
    exec,
    credentials_dir: systemdPath(layout.credentialsDir),
    writable: writablePaths(setup).map(systemdPath).join(' '),
    state_dir: systemdPath(setup.config.stateDir),
    // The relaxed sandbox also for user: root: nginx -t needs /run and /var/log writable either way.
    sudo: needsRootCommands(setup),
    process_runner: setup.runner === 'process',
    // runner: systemd without app_user: the app units are the service user's own.
    user_manager: setup.runner === 'systemd' && setup.appUser === undefined,
    app_user: setup.appUser ?? false,
    socket_apps: socketDirs.length > 0,
    // The runner reads no config and needs none of duet serve's flags.
    socket_dirs: socketDirs.map((dir) => `-${dir}`).join(' '),
    step_socket: systemdPath(STEP_SOCKET),
    // duet.service wants them all: the shared one and each app's own (env_files).
    step_sockets: ['duet-step.socket', ...appStepUnits(setup).map((unit) => unit.socket)].join(' '),
    step_exec: [node, main].map(systemdArg).join(' '),
    // One slice for every app's builds: the machine's limits, not an app's.
    memory_high: String(setup.config.buildLimits.memory_high),
    memory_max: String(setup.config.buildLimits.memory_max),
    api_token: has('api-token'),
    github_token: has('github-token'),
  };
  const appUnits = setup.runner === 'systemd' ? [APP_UNIT_TEMPLATE, APP_SOCKET_TEMPLATE] : [];
  const names = [SERVICE_UNIT, BOOTUP_UNIT, ...appUnits, ...(setup.appUser !== undefined ? STEP_UNITS : [])];
  const units: UnitFile[] = [];
  for (const name of names) {
    const dir = appUnits.includes(name) ? appUnitDir(setup) : UNIT_DIR;
    units.push({ name, path: join(dir, name), content: await renderSystemdTemplate(`${name}.template`, values) });
  }
  for (const { app, socket, service } of appStepUnits(setup)) {
    const socketValues = { ...values, step_socket: systemdPath(appStepSocket(app.name)) };
    units.push({ name: socket, path: join(UNIT_DIR, socket), content: await renderSystemdTemplate('duet-step.socket.template', socketValues) });
    const credentials = [
      `# ${app.name}'s own: systemd (PID 1, as root) hands the runner its env_files, root's and 0600, as`,
      '# credentials only the app user reads; the runner gives the command the values it asks for and',
      '# masks every value in what it sends back to duet, which never holds one.',
      ...app.env_files.map((file, index) => `LoadCredential=${envFileCredential(index)}:${systemdPath(file)}`),
    ];
    const content = `${await renderSystemdTemplate('duet-step@.service.template', values)}${credentials.join('\n')}\n`;
    units.push({ name: service, path: join(UNIT_DIR, service), content });
  }
  return units;
}

/**
 * app_user: the step socket and runner template of each app with env_files (config's
 * appStepSocket), beside duet-step.socket; an app without them uses that one.
 */
export function appStepUnits(setup: SetupConfig): Array<{ app: AppConfig; socket: string; service: string }> {
  if (setup.appUser === undefined) return [];
  return [...setup.config.apps.values()]
    .filter((app) => app.env_files.length > 0)
    .map((app) => ({ app, socket: `duet-step-${app.name}.socket`, service: `duet-step-${app.name}@.service` }));
}

/** app_user: the socket the installs and builds go through, the unit each connection starts, and the slice it runs in. */
export const STEP_UNITS = ['duet-step.socket', 'duet-step@.service', 'duet-build.slice'];

/** Where duet-app@.service goes: the system's units with app_user, else the users' units. */
export function appUnitDir(setup: SetupConfig): string {
  return setup.appUser === undefined ? USER_UNIT_DIR : UNIT_DIR;
}

/** app_user: the polkit rule that lets the service user start and stop the app units, and only those. */
export async function renderPolkitRule(setup: SetupConfig): Promise<string> {
  return renderSystemdTemplate('duet-polkit.rules.template', { user: setup.user });
}

/** The units `systemctl enable` links into multi-user.target.wants. */
export const ENABLED_UNITS = [SERVICE_UNIT, BOOTUP_UNIT];

/**
 * app_user: the drop-in of each color's unit that hands the app its env_files. PID 1 reads them
 * at each start, as root, so they stay root's 0600 and duet's uid never reads a value. The
 * color's own file, which duet writes, is read last: what duet sets (PORT, DUET_*) wins. A
 * `secrets` name the files do not set fails the start, named in the unit's journal. content
 * undefined: the app has no env_files, and a drop-in left from before is removed.
 */
export function renderEnvDropIns(setup: SetupConfig): Array<{ path: string; content: string | undefined }> {
  if (setup.runner !== 'systemd' || setup.appUser === undefined) return [];
  return [...setup.config.apps.values()].flatMap((app) =>
    colors.map((color) => {
      const path = join(UNIT_DIR, `${appUnitName(app.name, color)}.d`, 'env-files.conf');
      if (app.env_files.length === 0) return { path, content: undefined };
      const check = app.secrets.length
        ? [
            `ExecStartPre=/bin/sh -c 'for n in ${app.secrets.join(' ')}; do test -n "$$(printenv "$$n")" || { echo "duet: $$n (secrets of ${app.name} in duet.yml) is not set by its env_files" >&2; exit 1; }; done'`,
          ]
        : [];
      const lines = [
        `# Written by duet install from apps.${app.name}.env_files in duet.yml; the next install overwrites it.`,
        '[Service]',
        'EnvironmentFile=',
        ...app.env_files.map((file) => `EnvironmentFile=${systemdPath(file)}`),
        `EnvironmentFile=${systemdPath(setup.config.stateDir)}/%I.env`,
        ...check,
      ];
      return { path, content: `${lines.join('\n')}\n` };
    }),
  );
}

/** A drop-in of one color's unit; content undefined: none is wanted, and one left from before is removed. */
export interface DropIn {
  path: string;
  content: string | undefined;
}

/**
 * runner: systemd: each color's drop-ins for socket_activation (activationDropIns) in the app
 * units' dir; none in the other one (app_user set or unset since), nor with runner: process.
 */
export function renderActivationDropIns(setup: SetupConfig): DropIn[] {
  const apps = [...setup.config.apps.values()];
  return [UNIT_DIR, USER_UNIT_DIR].flatMap((dir) => {
    const used = setup.runner === 'systemd' && dir === appUnitDir(setup);
    return apps.flatMap((app) => activationDropIns(app, dir).map((dropIn) => (used ? dropIn : { ...dropIn, content: undefined })));
  });
}

/**
 * socket_activation under systemd, per color: the socket unit's ListenStream= (the template
 * cannot name the path: %I is <app>/<color>, the socket <app>/sockets/<color>.sock), and what
 * changes for its service. Named to be read before env-files.conf, whose ExecStartPre= must stay.
 */
export function activationDropIns(app: AppConfig, dir: string): DropIn[] {
  return colors.flatMap((color) => {
    const on = app.socket_activation && app.switch === 'socket';
    const header = `# Written by duet install from apps.${app.name}.socket_activation in duet.yml; the next install overwrites it.`;
    const listen = [header, '[Socket]', `ListenStream=${systemdPath(app.paths.socket[color])}`, `FileDescriptorName=${color}`];
    const service = [
      header,
      `# ${appSocketUnitName(app.name, color)} holds the color's socket and hands it to the app as fd 3.`,
      '[Unit]',
      '# No start limit: each request of death ends a process, and an attacker faster than any limit',
      '# would use it up; past it systemd fails the socket unit too, and nginx hands the next request',
      '# of death to the other color. duet serve judges a version that cannot start instead: it fails',
      '# over 10 s after the color stopped answering, then stops both of its units.',
      'StartLimitIntervalSec=0',
      '[Service]',
      "# The socket file is the socket unit's: the template's removal of a stale one is not for it.",
      'ExecStartPre=',
      '# Requests wait in the socket meanwhile: the next process at once.',
      'RestartSec=100ms',
      '# A clean exit too (a request that makes the app exit 0): else the socket unit itself starts the',
      '# next process at once, and such requests back to back reach its trigger limit (20 in 2 s), which',
      '# fails it. Through a restart, at most one start per RestartSec: below that limit.',
      'Restart=always',
    ];
    return [
      { path: join(dir, `${appSocketUnitName(app.name, color)}.d`, 'listen.conf'), content: on ? `${listen.join('\n')}\n` : undefined },
      { path: join(dir, `${appUnitName(app.name, color)}.d`, 'activation.conf'), content: on ? `${service.join('\n')}\n` : undefined },
    ];
  });
}
