import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { posix } from 'node:path';
import * as tar from 'tar';
import type { ArtifactSettings } from '../config/artifact.js';
import { DuetError } from '../errors.js';

/**
 * A prebuilt artifact is unpacked into the checkout only after every entry of it was read and
 * found harmless: a relative path under one of artifact.contains, a file, a directory or a link
 * that stays there, within the size and file-count limits. node-tar's own protections (no `..`,
 * no extraction through a symlink) stay on beneath this, as a second line.
 */

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

interface Entry {
  path: string;
  type: string;
  size?: number;
  linkpath?: string;
}

/** `./dist/a.js` and `dist/a.js` are the same entry; a trailing slash marks a directory only. */
function normalized(path: string): string {
  return path.replace(/^(?:\.\/)+/, '').replace(/\/+$/, '');
}

function under(path: string, contains: readonly string[]): boolean {
  return contains.some((root) => path === root || path.startsWith(`${root}/`));
}

/** Why `entry` may not be unpacked, or undefined when it may. */
function refusal(entry: Entry, contains: readonly string[]): string | undefined {
  const raw = entry.path;
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) return 'an absolute path';
  if (raw.split(/[/\\]/).includes('..')) return 'a path with ".."';
  if (!ALLOWED_TYPES.has(entry.type)) return `a ${entry.type} entry (only files, directories and links inside the checkout)`;
  const path = normalized(raw);
  if (path === '' || path === '.') return entry.type === 'Directory' ? undefined : 'an entry without a name';
  if (!under(path, contains)) {
    // The directories above a contained path (`public/` for public/assets) may be named too.
    if (entry.type === 'Directory' && contains.some((root) => root.startsWith(`${path}/`))) return undefined;
    return `outside artifact.contains (${contains.join(', ')})`;
  }
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    const target = entry.linkpath ?? '';
    if (target.startsWith('/')) return `a link to an absolute path (${target})`;
    // A symlink resolves from its own directory, a hard link from the archive's root.
    const resolved = posix.normalize(entry.type === 'SymbolicLink' ? posix.join(posix.dirname(path), target) : normalized(target));
    if (resolved.startsWith('..') || !under(resolved, contains)) return `a link leaving artifact.contains (to ${target})`;
  }
  return undefined;
}

function refused(name: string, entry: string, why: string): DuetError {
  return new DuetError(`the artifact ${name} was refused: entry "${entry}" is ${why}`, {
    step: 'update',
    hint: 'pack only the built files under artifact.contains, as relative paths without links leaving them (tar -czf app.tar.gz dist); live traffic is untouched',
  });
}

/** Read every entry of `file` (a tarball, gzipped or not) and throw on the first one refused. */
async function checkArchive(file: string, settings: ArtifactSettings): Promise<void> {
  let count = 0;
  let bytes = 0;
  let problem: DuetError | undefined;
  const input = createReadStream(file);
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      entry.resume();
      if (problem) return;
      count += 1;
      bytes += entry.size ?? 0;
      const why =
        refusal({ path: entry.path, type: entry.type, linkpath: entry.linkpath }, settings.contains) ??
        (count > settings.max_files ? `one more than artifact.max_files (${settings.max_files})` : undefined) ??
        (bytes > settings.max_bytes ? `past artifact.max_bytes (${settings.max_bytes} bytes unpacked)` : undefined);
      if (!why) return;
      problem = refused(settings.name, entry.path, why);
      // Nothing after a refused entry matters: the rest (a bomb, say) is not even decompressed.
      input.destroy();
    },
  });
  await new Promise<void>((resolve) => {
    const unreadable = (error: Error): void => {
      problem ??= new DuetError(`the artifact ${settings.name} is not a readable tarball: ${error.message}`, {
        step: 'update',
        hint: 'publish a .tar or .tar.gz made by tar (the workflow in docs/deploy.md, "Prebuilt artifacts"); live traffic is untouched',
        cause: error,
      });
      resolve();
    };
    input.on('error', unreadable).on('close', () => problem && resolve());
    parser.on('error', unreadable).on('end', () => resolve());
    input.pipe(parser);
  });
  if (problem) throw problem;
  if (count === 0) throw refused(settings.name, '(none)', 'missing: the archive is empty');
}

/** Replace artifact.contains in `checkout` with what the checked archive holds. */
export async function unpackArchive(file: string, checkout: string, settings: ArtifactSettings): Promise<void> {
  await checkArchive(file, settings);
  // What the commit or an earlier build left there must not mix with the artifact's files.
  for (const path of settings.contains) await rm(posix.join(checkout, path), { recursive: true, force: true });
  await tar.x({
    file,
    cwd: checkout,
    strict: true,
    preserveOwner: false,
    // Checked above; checked again so that nothing the list pass let through unexamined lands.
    filter: (path, entry) => 'type' in entry && refusal({ path, type: entry.type, linkpath: entry.linkpath }, settings.contains) === undefined,
  });
}
