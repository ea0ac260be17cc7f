import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { readSecrets } from '../config/secrets.js';
import { DuetError } from '../errors.js';
import { createGitHubClient } from '../util/github-client.js';
import type { OutputSink } from '../util/run.js';
import { locateActionsArtifact, tarballFromZip } from './actions-artifact.js';
import { artifactFailure, limited, type ArtifactClients, type LocatedArtifact } from './artifact-download.js';
import { unpackArchive } from './artifact-archive.js';
import type { ResolvedRef } from './checkout.js';
import { locateReleaseAsset } from './release-asset.js';

/**
 * A prebuilt artifact: the files CI built, fetched from GitHub (release-asset.ts, the tag's
 * release; actions-artifact.ts, a successful workflow run of the commit) instead of built next to
 * the live color. Whatever its source, it is downloaded with its SHA-256 computed on the way and
 * compared with the digest GitHub publishes, and unpacked only after every entry was checked.
 */

const DOWNLOAD_TIMEOUT_MS = 30 * 60_000;

type Locate = (clients: ArtifactClients, app: AppConfig, target: ResolvedRef, noToken: string) => Promise<LocatedArtifact>;
const locators: Record<Exclude<AppConfig['source'], 'git'>, Locate> = {
  release_asset: locateReleaseAsset,
  actions_artifact: locateActionsArtifact,
};

/** Where the tarball waits between its download and its unpacking: beside the checkouts. */
export function artifactPath(app: AppConfig, color: Color): string {
  return join(app.paths.root, 'run', `${color}.artifact`);
}

/** Find the artifact of `target` on GitHub, download it and check its SHA-256; resolves to the tarball. */
export async function downloadArtifact(app: AppConfig, color: Color, target: ResolvedRef, output?: OutputSink): Promise<string> {
  const settings = app.artifact!;
  const token = (await readSecrets()).githubToken;
  const clients = {
    api: createGitHubClient({ apiUrl: app.githubApiUrl, token: token ?? '', timeoutMs: 60_000 }),
    // The timeout covers the body too: a large archive on a slow link gets longer than an API call.
    download: createGitHubClient({ apiUrl: app.githubApiUrl, token: token ?? '', timeoutMs: DOWNLOAD_TIMEOUT_MS }),
  };
  const noToken = token === undefined ? ' (DUET_GITHUB_TOKEN is not set: a private repository answers 404)' : '';
  const located = await locators[app.source as keyof typeof locators](clients, app, target, noToken);
  const file = artifactPath(app, color);
  const fetched = located.zipped ? `${file}.zip` : file;
  output?.write(`duet: downloading the ${located.label} (${located.size} bytes), expecting sha256 ${located.expected}\n`);
  try {
    const actual = await download(located, fetched, settings.max_bytes);
    if (actual !== located.expected) {
      throw artifactFailure(
        `digest mismatch: the ${located.label} has sha256 ${actual}, but ${located.expected} was published`,
        'the artifact was replaced or corrupted: rebuild and re-upload it with its digest, then deploy again',
      );
    }
    if (located.zipped) await tarballFromZip(fetched, file, settings);
  } catch (error) {
    await rm(file, { force: true });
    throw error;
  } finally {
    if (located.zipped) await rm(fetched, { force: true });
  }
  return file;
}

/** Stream the artifact into `file`, hashing it on the way; resolves to its SHA-256 in hex. */
async function download(located: LocatedArtifact, file: string, maxBytes: number): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(await located.open(), limited(located.label, maxBytes), hashing, createWriteStream(file));
  } catch (error) {
    if (error instanceof DuetError) throw error;
    throw artifactFailure(`the download of the ${located.label} broke off: ${(error as Error).message}`, 'deploy again', error);
  }
  return hash.digest('hex');
}

/** Unpack the downloaded archive into the color's checkout (artifact-archive.ts), then remove it. */
export async function unpackArtifact(app: AppConfig, color: Color, file: string, output?: OutputSink): Promise<void> {
  try {
    output?.write(`duet: unpacking ${app.artifact!.name} into ${app.artifact!.contains.join(', ')}; no build on this server\n`);
    await unpackArchive(file, app.paths.checkout[color], app.artifact!);
  } finally {
    await rm(file, { force: true });
  }
}
