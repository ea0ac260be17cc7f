import type { AppConfig } from '../config/load.js';
import { artifactFailure, downloadStream, limited, sha256Of, statusOf } from './artifact-download.js';
import type { ArtifactClients, LocatedArtifact } from './artifact-download.js';
import type { ResolvedRef } from './checkout.js';

/**
 * source: release_asset: the asset of the GitHub release of the deployed tag. It is trusted only
 * as far as its SHA-256 matches the one published with it (GitHub's `digest` of the asset, else a
 * `<name>.sha256` asset beside it); without one it is refused, since a release's assets can be
 * replaced.
 */

interface Asset {
  id: number;
  name: string;
  size: number;
  /** "sha256:<hex>", published by GitHub for assets uploaded since mid-2025. */
  digest?: string | null;
}

function tagOf(app: AppConfig, target: ResolvedRef): string {
  if (target.ref.startsWith('refs/tags/')) return target.ref.slice('refs/tags/'.length);
  throw artifactFailure(
    `source: release_asset deploys tags, and ${target.ref} is not one: its build comes from the GitHub release of a tag`,
    `deploy a tag that has a release (deploy_on.tags or releases), or set source: git for ${app.name}`,
  );
}

export async function locateReleaseAsset(
  { api: client, download }: ArtifactClients,
  app: AppConfig,
  target: ResolvedRef,
  noToken: string,
): Promise<LocatedArtifact> {
  const name = app.artifact!.name;
  const [owner, repo] = app.repo!.split('/') as [string, string];
  const tag = tagOf(app, target);
  let assets: Asset[];
  try {
    assets = (await client.rest.repos.getReleaseByTag({ owner, repo, tag })).data.assets;
  } catch (error) {
    if (statusOf(error) === 404) {
      throw artifactFailure(
        `no GitHub release for tag ${tag} in ${app.repo}${noToken}`,
        `publish a release for ${tag} with the asset ${name} (docs/deploy.md, "Prebuilt artifacts")`,
        error,
      );
    }
    throw artifactFailure(
      `GitHub did not give the release of ${tag} in ${app.repo}: ${(error as Error).message}`,
      'check DUET_GITHUB_TOKEN (Contents: read) and github.api_url',
      error,
    );
  }
  const asset = assets.find((candidate) => candidate.name === name);
  if (!asset) {
    const names = assets.map((candidate) => candidate.name).join(', ') || 'none';
    throw artifactFailure(
      `the release ${tag} of ${app.repo} has no asset named ${name} (its assets: ${names})`,
      `upload ${name} to the release (the workflow in docs/deploy.md), or correct artifact.name`,
    );
  }
  const open = (wanted: Asset) => () =>
    downloadStream(download, 'GET /repos/{owner}/{repo}/releases/assets/{asset_id}', { owner, repo, asset_id: wanted.id }, wanted.name);
  return {
    label: `${name} of release ${tag}`,
    size: asset.size,
    expected: await publishedDigest(asset, assets, open),
    open: open(asset),
    zipped: false,
  };
}

/** The asset's published SHA-256, in hex: GitHub's digest, else the `<name>.sha256` asset's first word. */
async function publishedDigest(asset: Asset, assets: Asset[], open: (wanted: Asset) => () => Promise<NodeJS.ReadableStream>): Promise<string> {
  const fromGitHub = sha256Of(asset.digest);
  if (fromGitHub) return fromGitHub;
  const beside = assets.find((candidate) => candidate.name === `${asset.name}.sha256`);
  if (!beside) {
    throw artifactFailure(
      `no SHA-256 is published for ${asset.name}: GitHub gives no digest of it and the release has no ${asset.name}.sha256`,
      `upload ${asset.name}.sha256 (sha256sum ${asset.name} > ${asset.name}.sha256) beside it`,
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of (await open(beside)()).pipe(limited(beside.name, 4096))) chunks.push(chunk as Buffer);
  const hex = /^([0-9a-f]{64})\b/i.exec(Buffer.concat(chunks).toString('utf8').trim())?.[1];
  if (!hex) throw artifactFailure(`${beside.name} does not start with a SHA-256 in hex`, `write it with sha256sum ${asset.name} > ${beside.name}`);
  return hex.toLowerCase();
}
