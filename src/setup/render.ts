import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuetError } from '../errors.js';
import { packageRoot } from '../switch/templates.js';

/**
 * Templates of `duet install` (systemd units) live in the package's `systemd/` directory.
 * Unlike nginx config, unit files have no block structure to break, but one newline in a value
 * would start a new directive (an extra ExecStartPre=, say). So values may not contain line
 * breaks, and each value is escaped for its place by the caller (systemdArg, systemdPath).
 *
 * A line starting with `{{?flag}}` is kept only when `flag` is true (`{{?!flag}}`: when false;
 * `{{?a}}{{?b}}`: when both are):
 * the units differ by a few optional lines (credentials, hardening), and this keeps every
 * possible line visible in the template instead of assembling them in code.
 */
type SetupValues = Record<string, string | number | boolean>;

function renderSetupTemplate(template: string, values: SetupValues, label: string): string {
  const kept = template.split('\n').flatMap((line) => {
    // Several in a row: the line is kept when every one holds.
    for (let conditional; (conditional = /^\{\{\?(!?)([\w-]+)\}\}/.exec(line)); line = line.slice(conditional[0].length)) {
      const flag = lookup(values, conditional[2]!, label);
      if (Boolean(flag) !== (conditional[1] !== '!')) return [];
    }
    return [line];
  });
  return kept.join('\n').replace(/\{\{\s*([\w-]+)\s*\}\}/g, (_match, key: string) => {
    const value = String(lookup(values, key, label));
    if (/[\r\n]/.test(value) || value === '') {
      throw new DuetError(`${label}: refusing ${JSON.stringify(value)} as {{${key}}}`, {
        step: 'install',
        hint: 'values in unit files may not be empty or span lines; check duet.yml and the paths duet runs from',
      });
    }
    return value;
  });
}

function lookup(values: SetupValues, key: string, label: string): string | number | boolean {
  if (!Object.hasOwn(values, key)) {
    throw new DuetError(`${label}: no value for the placeholder {{${key}}}`, {
      step: 'install',
      hint: 'the template and this duet version do not match; reinstall duet',
    });
  }
  return values[key]!;
}

export async function renderSystemdTemplate(name: string, values: SetupValues): Promise<string> {
  const template = await readFile(join(packageRoot(), 'systemd', name), 'utf8');
  return renderSetupTemplate(template, values, name);
}

/**
 * One argument of ExecStart=: systemd expands `%` specifiers and `$VAR` in command lines, and
 * splits on whitespace unless quoted, so those are escaped and the word quoted when needed.
 */
export function systemdArg(value: string): string {
  const escaped = value.replaceAll('%', '%%').replaceAll('$', '$$');
  if (!/[\s"'\\;]/.test(escaped)) return escaped;
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * A path in a unit setting that takes paths (ReadWritePaths=, WorkingDirectory=, LoadCredential=).
 * Only `%` needs escaping there; whitespace would split ReadWritePaths=, so it is refused.
 */
export function systemdPath(value: string): string {
  if (/\s/.test(value)) {
    throw new DuetError(`the path ${JSON.stringify(value)} contains whitespace, which unit files cannot hold here`, {
      step: 'install',
      hint: 'use paths without spaces for state_dir, nginx.conf_dir and the config file',
    });
  }
  return value.replaceAll('%', '%%');
}
