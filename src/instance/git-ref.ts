import { InvalidInputError } from '../errors.js';

/**
 * Refs arrive from webhooks and command lines. Before one reaches git (or a log line, or an
 * environment variable of the app) it must be a name git itself would accept, and nothing a shell
 * or an option parser could read as something else. These are `git check-ref-format` rules
 * (one-level names such as `main` allowed), plus a ban on shell metacharacters and a length cap.
 */

const MAX_REF_LENGTH = 255;

/** A full commit id: SHA-1 (40 hex) or SHA-256 (64 hex). */
const FULL_OBJECT_ID = /^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/;

/** git check-ref-format: `~ ^ : ? * [ \`; then characters a shell would act upon. */
const GIT_FORBIDDEN = /[~^:?*[\\]/;
const SHELL_META = /[;&|$`'"<>(){}!#]/;
/**
 * Control and format characters (Unicode categories Cc and Cf) and line and paragraph separators
 * (Zl, Zp). A terminal may act on a control; a bidi control reorders the text around it (U+202E
 * shows "v1\u202e3.2.1" as "v11.2.3"); a zero-width one (U+200B, the soft hyphen U+00AD, U+2060,
 * U+FEFF, the tag characters from U+E0000) shows nothing, so "v1.2.3\u200b" reads as v1.2.3 in
 * `duet history`; a separator breaks a log line. git accepts them all; no one types them into a ref.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, 'gu');

const codePoint = (c: string): string => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/** `ref` quoted for a message, its invisible characters written as \uXXXX (a surrogate pair as two). */
export function shownRef(ref: string, max = 80): string {
  const cut = ref.length > max ? `${ref.slice(0, max)}...` : ref;
  const escaped = (c: string): string =>
    c
      .split('')
      .map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`)
      .join('');
  return JSON.stringify(cut).replace(INVISIBLE_ALL, escaped);
}

export function isFullObjectId(ref: string): boolean {
  return FULL_OBJECT_ID.test(ref);
}

/**
 * A commit named by its id, whole or abbreviated as git shows it: 7 hex digits at least, up to a
 * whole SHA-1 (40) or SHA-256 (64) id.
 */
const COMMIT_ID_PREFIX = /^[0-9a-f]{7,64}$/i;

/** `value` as a commit id or an abbreviation of one, in lower case; throws InvalidInputError (exit 2, HTTP 400). */
export function validateCommitPrefix(value: unknown, what: string): string {
  if (typeof value === 'string' && COMMIT_ID_PREFIX.test(value)) return value.toLowerCase();
  const problem =
    value === undefined || value === null ? `no ${what} given` : `invalid ${what} ${typeof value === 'string' ? shownRef(value) : JSON.stringify(value)}`;
  throw new InvalidInputError(`${problem}: a commit id is 7 to 64 hex digits`, {
    step: 'pick',
    hint: 'name the commit live now, as `duet status` shows it (e.g. 3f2a9c1), or whole',
  });
}

/** Why `ref` is not acceptable, or undefined when it is. */
export function refNameProblem(ref: unknown): string | undefined {
  if (typeof ref !== 'string') return 'not a string';
  if (ref.length === 0) return 'it is empty';
  if (ref.length > MAX_REF_LENGTH) return `it is longer than ${MAX_REF_LENGTH} characters`;
  if (ref.startsWith('-')) return 'it starts with "-"';
  const invisible = INVISIBLE.exec(ref);
  if (invisible) return `it contains ${codePoint(invisible[0])}, an invisible or control character: the ref would not show as what it is`;
  if (ref.includes(' ')) return 'it contains a space';
  const forbidden = GIT_FORBIDDEN.exec(ref) ?? SHELL_META.exec(ref);
  if (forbidden) return `it contains "${forbidden[0]}"`;
  if (ref.includes('..')) return 'it contains ".."';
  if (ref.includes('@{')) return 'it contains "@{"';
  if (ref === '@') return 'it is "@"';
  if (ref.startsWith('/')) return 'it starts with "/"';
  if (ref.endsWith('/')) return 'it ends with "/"';
  if (ref.includes('//')) return 'it contains "//"';
  if (ref.endsWith('.')) return 'it ends with "."';
  for (const component of ref.split('/')) {
    if (component.startsWith('.')) return `its component "${component}" starts with "."`;
    if (component.endsWith('.lock')) return `its component "${component}" ends with ".lock"`;
  }
  return undefined;
}

/**
 * Return `ref` unchanged when it is a ref name git accepts (or a full commit sha), else throw a
 * DuetError (step "resolve", exit code 2: the input is wrong, not the machine).
 */
export function validateRefName(ref: string): string {
  const problem = refNameProblem(ref);
  if (problem !== undefined) {
    const shown = typeof ref === 'string' ? shownRef(ref) : String(ref);
    throw new InvalidInputError(`invalid ref ${shown}: ${problem}`, {
      step: 'resolve',
      hint: 'name a branch, a tag or a full commit sha, e.g. main, v1.2.0, refs/tags/v1',
    });
  }
  return ref;
}
