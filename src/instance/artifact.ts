import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Octokit } from '@octokit/rest';
import type { AppConfig } from '../config/load.js';
import type { Color } from '../config/schema.js';
import { readSecrets } from '../config/secrets.js';
import { DuetError } from '../errors.js';
import { createGitHubClient } from '../util/github-client.js';
import type { OutputSink } from '../util/run.js';
import { unpackArchive } from './artifact-archive.js';
import type { ResolvedRef } from './checkout.js';

/**
 * source: release_asset: the files CI built for the deployed tag, fetched from its GitHub release
 * instead of built next to the live color. The archive is trusted only as far as its SHA-256
 * matches the one published with it (GitHub's `digest` of the asset, else a `<name>.sha256`
 * asset beside it); without one it is refused, since a release's assets can be replaced.
 */

const UNTOUCHED = 'live traffic is untouched';
const DOWNLOAD_TIMEOUT_MS = 30 * 60_000;

interface Asset {
  id: number;
  name: string;
  size: number;
  /** "sha256:<hex>", published by GitHub for assets uploaded since mid-2025. */
  digest?: string | null;
}

function failure(message: string, hint: string, cause?: unknown): DuetError {
  return new DuetError(message, { step: 'update', hint: `${hint}; ${UNTOUCHED}`, cause });
}

function statusOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { status?: unknown }).status === 'number'
    ? (error as { status: number }).status
    : undefined;
}

function tagOf(app: AppConfig, target: ResolvedRef): string {
  if (target.ref.startsWith('refs/tags/')) return target.ref.slice('refs/tags/'.length);
  throw failure(
    `source: release_asset deploys tags, and ${target.ref} is not one: its build comes from the GitHub release of a tag`,
    `deploy a tag that has a release (deploy_on.tags or releases), or set source: git for ${app.name}`,
  );
}

/** Where the archive waits between its download and its unpacking: beside the checkouts. */
export function artifactPath(app: AppConfig, color: Color): string {
  return join(app.paths.root, 'run', `${color}.artifact`);
}

/** Download the asset of the release of `target`'s tag and check its SHA-256; resolves to the file. */
export async function downloadArtifact(app: AppConfig, color: Color, target: ResolvedRef, output?: OutputSink): Promise<string> {
  const settings = app.artifact!;
  const [owner, repo] = app.repo!.split('/') as [string, string];
  const tag = tagOf(app, target);
  const token = (await readSecrets()).githubToken;
  const client = createGitHubClient({ apiUrl: app.githubApiUrl, token: token ?? '', timeoutMs: 60_000 });
  // The timeout covers the body too: a large archive on a slow link gets longer than an API call.
  const downloader = createGitHubClient({ apiUrl: app.githubApiUrl, token: token ?? '', timeoutMs: DOWNLOAD_TIMEOUT_MS });
  const noToken = token === undefined ? ' (DUET_GITHUB_TOKEN is not set: a private repository answers 404)' : '';
  let assets: Asset[];
  try {
    assets = (await client.rest.repos.getReleaseByTag({ owner, repo, tag })).data.assets;
  } catch (error) {
    if (statusOf(error) === 404) {
      throw failure(
        `no GitHub release for tag ${tag} in ${app.repo}${noToken}`,
        `publish a release for ${tag} with the asset ${settings.name} (docs/deploy.md, "Prebuilt artifacts")`,
        error,
      );
    }
    throw failure(
      `GitHub did not give the release of ${tag} in ${app.repo}: ${(error as Error).message}`,
      'check DUET_GITHUB_TOKEN (Contents: read) and github.api_url',
      error,
    );
  }
  const asset = assets.find((candidate) => candidate.name === settings.name);
  if (!asset) {
    const names = assets.map((candidate) => candidate.name).join(', ') || 'none';
    throw failure(
      `the release ${tag} of ${app.repo} has no asset named ${settings.name} (its assets: ${names})`,
      `upload ${settings.name} to the release (the workflow in docs/deploy.md), or correct artifact.name`,
    );
  }
  const expected = await publishedDigest(downloader, owner, repo, asset, assets);
  const file = artifactPath(app, color);
  output?.write(`duet: downloading ${settings.name} (${asset.size} bytes) of release ${tag}, expecting sha256 ${expected}\n`);
  const actual = await download(downloader, owner, repo, asset, file, settings.max_bytes);
  if (actual !== expected) {
    await rm(file, { force: true });
    throw failure(
      `digest mismatch: ${settings.name} of release ${tag} has sha256 ${actual}, but ${expected} was published`,
      'the asset was replaced or corrupted: rebuild and re-upload it with its digest, then deploy again',
    );
  }
  return file;
}

/** The asset's published SHA-256, in hex: GitHub's digest, else the `<name>.sha256` asset's first word. */
async function publishedDigest(client: Octokit, owner: string, repo: string, asset: Asset, assets: Asset[]): Promise<string> {
  const fromGitHub = /^sha256:([0-9a-f]{64})$/i.exec(asset.digest ?? '')?.[1];
  if (fromGitHub) return fromGitHub.toLowerCase();
  const beside = assets.find((candidate) => candidate.name === `${asset.name}.sha256`);
  if (!beside) {
    throw failure(
      `no SHA-256 is published for ${asset.name}: GitHub gives no digest of it and the release has no ${asset.name}.sha256`,
      `upload ${asset.name}.sha256 (sha256sum ${asset.name} > ${asset.name}.sha256) beside it`,
    );
  }
  const text = (await fetchBytes(client, owner, repo, beside, 4096)).toString('utf8');
  const hex = /^([0-9a-f]{64})\b/i.exec(text.trim())?.[1];
  if (!hex) throw failure(`${beside.name} does not start with a SHA-256 in hex`, `write it with sha256sum ${asset.name} > ${beside.name}`);
  return hex.toLowerCase();
}

/** GET the asset's bytes: GitHub answers 302 to its storage, which fetch follows without the token. */
async function assetStream(client: Octokit, owner: string, repo: string, asset: Asset): Promise<Readable> {
  try {
    const response = await client.request('GET /repos/{owner}/{repo}/releases/assets/{asset_id}', {
      owner,
      repo,
      asset_id: asset.id,
      headers: { accept: 'application/octet-stream' },
      request: { parseSuccessResponseBody: false },
    });
    return Readable.fromWeb(response.data as unknown as WebReadableStream<Uint8Array>);
  } catch (error) {
    throw failure(`cannot download ${asset.name} from GitHub: ${(error as Error).message}`, 'check DUET_GITHUB_TOKEN and that the asset still exists', error);
  }
}

function limited(name: string, maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > maxBytes)
        done(failure(`${name} is larger than artifact.max_bytes (${maxBytes} bytes)`, 'raise artifact.max_bytes or make the artifact smaller'));
      else done(null, chunk);
    },
  });
}

async function fetchBytes(client: Octokit, owner: string, repo: string, asset: Asset, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await assetStream(client, owner, repo, asset)).pipe(limited(asset.name, maxBytes))) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Stream the asset into `file`, hashing it on the way; resolves to its SHA-256 in hex. */
async function download(client: Octokit, owner: string, repo: string, asset: Asset, file: string, maxBytes: number): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(await assetStream(client, owner, repo, asset), limited(asset.name, maxBytes), hashing, createWriteStream(file));
  } catch (error) {
    await rm(file, { force: true });
    if (error instanceof DuetError) throw error;
    throw failure(`the download of ${asset.name} broke off: ${(error as Error).message}`, 'deploy again', error);
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
