import { test } from '../support/test.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create, Header } from 'tar';
import { parseConfig, pickApp } from '../../src/config/load.js';
import { artifactSchema, type ArtifactSettings } from '../../src/config/artifact.js';
import { unpackArchive } from '../../src/instance/artifact-archive.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

/** What a prebuilt artifact may hold (src/instance/artifact-archive.ts), and its configuration. */

const contains = ['dist', 'public/assets'];

test('an entry is refused for an absolute path, "..", a device or fifo, a place outside contains, or a link leaving contains', async (t) => {
  const dir = await tempDir(t, 'duet-artifact-entries');
  const settings = artifactSchema.parse({ name: 'app.tgz', contains });
  /** A tarball of exactly these headers, whatever a tar tool would make of such entries. */
  const archive = async (name: string, entries: Array<{ path: string; type: string; linkpath?: string }>): Promise<string> => {
    const headers = entries.map((entry) => {
      const block = Buffer.alloc(512);
      new Header({ size: 0, mode: 0o644, mtime: new Date(0), ...entry } as ConstructorParameters<typeof Header>[0]).encode(block);
      return block;
    });
    const file = join(dir, `${name}.tgz`);
    await writeFile(file, gzipSync(Buffer.concat([...headers, Buffer.alloc(1024)])));
    return file;
  };
  const refused: Array<[{ path: string; type: string; linkpath?: string }, RegExp]> = [
    [{ path: '/etc/passwd', type: 'File' }, /an absolute path/],
    [{ path: 'dist/../../x', type: 'File' }, /a path with "\.\."/],
    [{ path: 'dist/tty', type: 'CharacterDevice' }, /a CharacterDevice entry/],
    [{ path: 'dist/pipe', type: 'FIFO' }, /a FIFO entry/],
    [{ path: 'public/index.html', type: 'File' }, /outside artifact\.contains \(dist, public\/assets\)/],
    [{ path: 'distill.js', type: 'File' }, /outside artifact\.contains/],
    [{ path: 'dist/up', type: 'SymbolicLink', linkpath: '../package.json' }, /a link leaving artifact\.contains \(to \.\.\/package\.json\)/],
    [{ path: 'dist/abs', type: 'SymbolicLink', linkpath: '/etc' }, /a link to an absolute path \(\/etc\)/],
    [{ path: 'dist/hard', type: 'Link', linkpath: 'package.json' }, /a link leaving artifact\.contains/],
  ];
  const untouched = join(dir, 'untouched');
  for (const [index, [entry, expected]] of refused.entries()) {
    const file = await archive(`refused-${index}`, [entry]);
    const error = await unpackArchive(file, untouched, settings).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(error?.message.includes(`entry "${entry.path}" is `), `${entry.path}: ${error?.message ?? 'accepted'}`);
    assert.match(error!.message, expected, entry.path);
  }
  assert.equal(existsSync(untouched), false, 'nothing of a refused archive was unpacked');

  const checkout = join(dir, 'checkout');
  await mkdir(checkout);
  const accepted = await archive('accepted', [
    { path: './', type: 'Directory' },
    { path: './dist/', type: 'Directory' },
    { path: 'dist/main.js', type: 'File' },
    { path: 'public/', type: 'Directory' },
    { path: 'public/assets/app.css', type: 'File' },
    { path: 'dist/current', type: 'SymbolicLink', linkpath: 'v2/main.js' },
    { path: 'dist/copy.js', type: 'Link', linkpath: 'dist/main.js' },
  ]);
  await unpackArchive(accepted, checkout, settings);
  for (const path of ['dist/main.js', 'public/assets/app.css', 'dist/copy.js']) assert.ok(existsSync(join(checkout, path)), path);
  assert.equal(await readlink(join(checkout, 'dist', 'current')), 'v2/main.js');
});

test('the file count and unpacked size are limited; a good archive replaces what contains held before and keeps the rest of the checkout', async (t) => {
  const dir = await tempDir(t, 'duet-artifact-archive');
  const source = join(dir, 'source');
  await mkdir(join(source, 'dist'), { recursive: true });
  for (let i = 0; i < 5; i++) await writeFile(join(source, 'dist', `f${i}.js`), 'x'.repeat(1000));
  await symlink('f0.js', join(source, 'dist', 'main.js'));
  const file = join(dir, 'app.tgz');
  await create({ gzip: true, cwd: source, file }, ['dist']);

  const settings = (over: object) => artifactSchema.parse({ name: 'app.tgz', ...over });
  // Each refused before anything is unpacked: the checkout is never touched.
  const untouched = join(dir, 'untouched');
  const checkArchive = (archive: string, o: ArtifactSettings) => unpackArchive(archive, untouched, o);
  await assert.rejects(checkArchive(file, settings({ max_files: 3 })), /entry "dist\/.*" is one more than artifact\.max_files \(3\)/);
  await assert.rejects(checkArchive(file, settings({ max_bytes: 2500 })), /entry "dist\/.*" is past artifact\.max_bytes \(2500 bytes unpacked\)/);
  await writeFile(join(dir, 'junk.tgz'), 'not a tarball at all');
  await assert.rejects(checkArchive(join(dir, 'junk.tgz'), settings({})), /the artifact app\.tgz (is not a readable tarball|was refused: entry "\(none\)")/);

  // A header that announces 5 GiB is refused from its header: its body is never read (nor there).
  const block = Buffer.alloc(512);
  new Header({ path: 'dist/huge.bin', type: 'File', size: 5 * 1024 ** 3, mode: 0o644, mtime: new Date(0) }).encode(block);
  await writeFile(join(dir, 'bomb.tgz'), gzipSync(Buffer.concat([block, Buffer.alloc(4096)])));
  await assert.rejects(checkArchive(join(dir, 'bomb.tgz'), settings({})), /entry "dist\/huge\.bin" is past artifact\.max_bytes \(1073741824 bytes unpacked\)/);

  const checkout = join(dir, 'checkout');
  await mkdir(join(checkout, 'dist'), { recursive: true });
  await writeFile(join(checkout, 'dist', 'stale.js'), 'from an earlier build');
  await writeFile(join(checkout, 'package.json'), '{}');
  await unpackArchive(file, checkout, settings({}));
  assert.equal(existsSync(join(checkout, 'dist', 'stale.js')), false, 'contains is replaced whole');
  assert.equal(await readFile(join(checkout, 'package.json'), 'utf8'), '{}', 'the rest of the checkout stays');
  assert.equal(await readlink(join(checkout, 'dist', 'main.js')), 'f0.js');
  assert.equal((await readFile(join(checkout, 'dist', 'f4.js'), 'utf8')).length, 1000);
  assert.equal(existsSync(untouched), false, 'the refused archives unpacked nothing');
});

test('a prebuilt source needs artifact and repo; artifact without it is refused; workflow only with actions_artifact; contains may not reach node_modules, .git or ..', () => {
  const app = (keys: string) => `apps:\n  cafeteria:\n    clone_url: /srv/c.git\n${keys}`;
  const refusedWith = (keys: string, pattern: RegExp) =>
    assert.throws(
      () => parseConfig(app(keys), 'duet.yml'),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );
  refusedWith('    source: release_asset\n    repo: o/r\n', /apps\.cafeteria\.artifact: source: release_asset needs artifact\.name/);
  refusedWith('    source: release_asset\n    artifact: { name: app.tgz }\n', /apps\.cafeteria\.repo: source: release_asset needs repo/);
  refusedWith('    artifact: { name: app.tgz }\n', /apps\.cafeteria\.artifact: is used with source: release_asset or actions_artifact only/);
  refusedWith(
    '    source: release_asset\n    repo: o/r\n    artifact: { name: app.tgz, contains: [node_modules] }\n',
    /artifact\.contains\.0: a relative path inside the checkout/,
  );
  refusedWith('    source: release_asset\n    repo: o/r\n    artifact: { name: app.tgz, contains: [../x] }\n', /artifact\.contains\.0/);
  refusedWith('    source: release_asset\n    repo: o/r\n    artifact: { name: "../app.tgz" }\n', /artifact\.name: a file name/);
  refusedWith('    source: actions_artifact\n    repo: o/r\n', /apps\.cafeteria\.artifact: source: actions_artifact needs artifact\.name/);
  refusedWith(
    '    source: release_asset\n    repo: o/r\n    artifact: { name: app.tgz, workflow: build.yml }\n',
    /artifact\.workflow: names the workflow of source: actions_artifact/,
  );
  refusedWith('    source: actions_artifact\n    repo: o/r\n    artifact: { name: app, workflow: ../x }\n', /artifact\.workflow: the workflow file name/);
  refusedWith('    source: pipeline\n', /apps\.cafeteria\.source/);
  const actions = pickApp(
    parseConfig(app('    source: actions_artifact\n    repo: o/r\n    artifact: { name: app, workflow: build.yml }\n'), 'duet.yml'),
    undefined,
  );
  assert.equal(actions.artifact?.workflow, 'build.yml');
  const parsed = pickApp(parseConfig(app('    source: release_asset\n    repo: o/r\n    artifact: { name: app.tgz }\n'), 'duet.yml'), undefined);
  assert.deepEqual(parsed.artifact, { name: 'app.tgz', contains: ['dist'], max_bytes: 1024 ** 3, max_files: 100_000 });
  assert.equal(parsed.githubApiUrl, 'https://api.github.com');
  assert.equal(pickApp(parseConfig(app(''), 'duet.yml'), undefined).source, 'git');
});
