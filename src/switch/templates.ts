import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuetError } from '../errors.js';

/**
 * The nginx templates ship in the package's `nginx/` directory. Compiled code runs from
 * dist/src/switch/ and sources (tests, ts-node) from src/switch/, so the depth differs: walk up to
 * the first directory holding a package.json instead of hard-coding `../..`.
 */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
}

function templatePath(name: string): string {
  return join(packageRoot(), 'nginx', name);
}

/** A list (server_name's names) is checked item by item and joined by spaces. */
export type TemplateValues = Record<string, string | number | readonly string[]>;

/**
 * A value spliced into nginx syntax could end a directive (`;`), open or close a block, start a
 * string or split an argument. Config validation already keeps such characters out; this is the
 * second lock, and it refuses rather than escapes so that nothing is ever silently altered.
 * `$` is refused too: nginx would read it as a variable in proxy_pass and friends.
 */
const UNSAFE = /[;{}"'`\\$#\s]/;

/** Replace every `{{name}}`; a placeholder without a value, or an unsafe value, is an error. */
function renderTemplate(template: string, values: TemplateValues, label: string): string {
  return template.replace(/\{\{\s*([\w-]+)\s*\}\}/g, (_match, key: string) => {
    if (!Object.hasOwn(values, key)) {
      throw new DuetError(`${label}: no value for the placeholder {{${key}}}`, {
        step: 'switch',
        hint: 'the nginx template and this duet version do not match; reinstall duet or fix the template',
      });
    }
    const given = values[key]!;
    const items: readonly string[] = typeof given === 'object' ? given : [String(given)];
    const value = items.join(' ');
    if (items.length === 0 || items.some((item) => item === '' || UNSAFE.test(item))) {
      throw new DuetError(`${label}: refusing to put ${JSON.stringify(value)} into nginx config as {{${key}}}`, {
        step: 'switch',
        hint: 'values in nginx config may not be empty or contain whitespace, quotes, ; { } $ # or \\; fix duet.yml or the state_dir path',
      });
    }
    return value;
  });
}

const cache = new Map<string, string>();

/** Read `nginx/<name>` (cached: templates do not change while duet runs). */
async function readTemplate(name: string): Promise<string> {
  let template = cache.get(name);
  if (template === undefined) {
    template = await readFile(templatePath(name), 'utf8');
    cache.set(name, template);
  }
  return template;
}

/** Read `nginx/<name>`, let `select` pick its lines, and render it. */
export async function renderTemplateFile(name: string, values: TemplateValues, select: (template: string) => string = (t) => t): Promise<string> {
  return renderTemplate(select(await readTemplate(name)), values, name);
}
