import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { validateRefName, refNameProblem, isFullObjectId } from '../../src/instance/git-ref.js';
import { DuetError } from '../../src/errors.js';
import { exitCodeOf } from '../../src/error-kinds.js';

const sha = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';

const accepted = [
  'main',
  'v2',
  'v1.2.0',
  'release/2026-11',
  'refs/tags/v1',
  'refs/heads/main',
  'feature/x_y-z',
  'a@b',
  'v1.lockfile',
  sha,
  sha.toUpperCase(),
  'x'.repeat(255),
];

const rejected: Array<[string, RegExp]> = [
  ['', /empty/],
  ['-x', /starts with "-"/],
  ['--upload-pack=evil', /starts with "-"/],
  ['a..b', /"\.\."/],
  ['a b', /space/],
  ['a;rm -rf', /space|";"/],
  ['a;b', /";"/],
  ['$(x)', /"\$"/],
  ['`x`', /"`"/],
  ['a&b', /"&"/],
  ['a|b', /"\|"/],
  ["a'b", /"'"/],
  ['a"b', /"""/],
  ['a<b', /"<"/],
  ['a>b', /">"/],
  ['a(b', /"\("/],
  ['a{b', /"\{"/],
  ['a!b', /"!"/],
  ['a#b', /"#"/],
  ['x.lock', /ends with "\.lock"/],
  ['refs/heads/x.lock', /ends with "\.lock"/],
  ['.hidden', /starts with "\."/],
  ['refs/tags/.v1', /starts with "\."/],
  ['a//b', /"\/\/"/],
  ['a/', /ends with "\/"/],
  ['/a', /starts with "\/"/],
  ['a.', /ends with "\."/],
  ['a\x07b', /control character/],
  ['a\nb', /control character/],
  ['a\tb', /control character/],
  ['a\x7fb', /control character/],
  // Invisible: each of these shows as v1.2.3 (or v12) in a terminal and in `duet history`.
  ['v1.2.3\u200b', /U\+200B, an invisible or control character/], // zero-width space
  ['v1\u00ad2', /U\+00AD/], // soft hyphen
  ['v1.2.3\u2060', /U\+2060/], // word joiner
  ['\ufeffv1.2.3', /U\+FEFF/], // zero-width no-break space (BOM)
  ['v1.2.3\u{e0031}', /U\+E0031/], // tag digit one
  ['v1\u180e2', /U\+180E/], // Mongolian vowel separator
  ['v1.2.3\u200d', /U\+200D/], // zero-width joiner
  ['a~1', /"~"/],
  ['a^', /"\^"/],
  ['a:b', /":"/],
  ['a?', /"\?"/],
  ['a*', /"\*"/],
  ['a[b', /"\["/],
  ['a\\b', /"\\"/],
  ['@', /"@"/],
  ['a@{1}', /"@\{"|"\{"/],
  ['x'.repeat(256), /longer than 255/],
];

test('names git accepts (and full shas) pass through unchanged', () => {
  for (const ref of accepted) {
    assert.equal(refNameProblem(ref), undefined, ref);
    assert.equal(validateRefName(ref), ref);
  }
});

test('bad names are refused with the reason, as a resolve error with exit code 2', () => {
  for (const [ref, reason] of rejected) {
    assert.throws(
      () => validateRefName(ref),
      (error: unknown) => {
        assert.ok(error instanceof DuetError, `${JSON.stringify(ref)}: not a DuetError`);
        assert.equal(error.step, 'resolve');
        assert.equal(exitCodeOf(error), 2);
        assert.ok(error.hint);
        assert.match(error.message, reason, JSON.stringify(ref));
        return true;
      },
      JSON.stringify(ref),
    );
  }
});

test('a non-string from a JSON payload is refused, not crashed on', () => {
  assert.throws(() => validateRefName(42 as unknown as string), DuetError);
  assert.throws(() => validateRefName(undefined as unknown as string), DuetError);
});

test('full object ids are told apart from names', () => {
  assert.equal(isFullObjectId(sha), true);
  assert.equal(isFullObjectId('a'.repeat(64)), true);
  assert.equal(isFullObjectId(sha.slice(0, 12)), false);
  assert.equal(isFullObjectId(`${sha}0`), false);
  assert.equal(isFullObjectId('main'), false);
});
