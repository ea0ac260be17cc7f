import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Octokit } from '@octokit/rest';
import yauzl from 'yauzl';
import type { ArtifactSettings } from '../config/artifact.js';
import type { AppConfig } from '../config/load.js';
import { DuetError } from '../errors.js';
import { artifactFailure, downloadStream, limited, sha256Of, statusOf } from './artifact-download.js';
import type { ArtifactClients, LocatedArtifact } from './artifact-download.js';
import type { ResolvedRef } from './checkout.js';

/**
 * source: actions_artifact: what a successful GitHub Actions run for the deployed commit uploaded
 * (actions/upload-artifact), any ref, not only tags. GitHub serves an artifact as a zip and
 * publishes the zip's SHA-256 (upload-artifact v4 and later); the zip must hold one tarball,
 * because a zip loses file modes (upload-artifact's own advice: tar first), and the tarball then
 * goes through the same checks as a release asset.
 */

interface Run {
  id: number;
  run_number: number;
}

interface Artifact {
  id: number;
  name: string;
  size_in_bytes: number;
  expired: boolean;
  expires_at: string | null;
  digest?: string | null;
}

type Repo = { owner: string; repo: string };

async function successfulRuns(client: Octokit, where: Repo, app: AppConfig, sha: string): Promise<Run[]> {
  const workflow = app.artifact!.workflow;
  const query = { ...where, head_sha: sha, status: 'success' as const, per_page: 100 };
  try {
    const { data } = workflow
      ? await client.rest.actions.listWorkflowRuns({ ...query, workflow_id: workflow })
      : await client.rest.actions.listWorkflowRunsForRepo(query);
    return data.workflow_runs;
  } catch (error) {
    if (statusOf(error) === 404 && workflow) {
      throw artifactFailure(`${app.repo} has no workflow ${workflow}`, 'correct artifact.workflow (a file name under .github/workflows)', error);
    }
    throw artifactFailure(
      `GitHub did not list the workflow runs of ${sha.slice(0, 12)} in ${app.repo}: ${(error as Error).message}`,
      'check DUET_GITHUB_TOKEN (Actions: read) and github.api_url',
      error,
    );
  }
}

async function artifactOf(client: Octokit, where: Repo, run: Run, name: string): Promise<Artifact | undefined> {
  try {
    const { data } = await client.rest.actions.listWorkflowRunArtifacts({ ...where, run_id: run.id, name, per_page: 100 });
    return data.artifacts.find((artifact) => artifact.name === name);
  } catch (error) {
    throw artifactFailure(`GitHub did not list the artifacts of run ${run.id}: ${(error as Error).message}`, 'check DUET_GITHUB_TOKEN (Actions: read)', error);
  }
}

export async function locateActionsArtifact(
  { api: client, download }: ArtifactClients,
  app: AppConfig,
  target: ResolvedRef,
  noToken: string,
): Promise<LocatedArtifact> {
  const { name, workflow } = app.artifact!;
  const [owner, repo] = app.repo!.split('/') as [string, string];
  const where = { owner, repo };
  const runs = await successfulRuns(client, where, app, target.sha);
  const of = workflow ? ` of ${workflow}` : '';
  // GitHub lists the newest run first: a re-run's artifact wins over the first attempt's.
  for (const run of runs) {
    const artifact = await artifactOf(client, where, run, name);
    if (!artifact) continue;
    const label = `artifact ${name} of run ${run.run_number}${of}`;
    if (artifact.expired) {
      throw artifactFailure(
        `the ${label} for ${target.sha.slice(0, 12)} expired${artifact.expires_at ? ` on ${artifact.expires_at}` : ''}: GitHub no longer has its files`,
        're-run the workflow for this commit (or raise its retention-days), or deploy with source: git',
      );
    }
    const expected = sha256Of(artifact.digest);
    if (!expected) {
      throw artifactFailure(
        `GitHub publishes no SHA-256 digest of the ${label}`,
        'upload it with actions/upload-artifact v4 or later, which publishes the digest duet checks',
      );
    }
    return {
      label,
      size: artifact.size_in_bytes,
      expected,
      open: () =>
        downloadStream(
          download,
          'GET /repos/{owner}/{repo}/actions/artifacts/{artifact_id}/{archive_format}',
          { ...where, artifact_id: artifact.id, archive_format: 'zip' },
          label,
        ),
      zipped: true,
    };
  }
  throw artifactFailure(
    `no successful workflow run${of} for ${target.sha.slice(0, 12)} in ${app.repo} has an artifact named ${name}${noToken}`,
    runs.length === 0
      ? 'wait until CI has passed for this commit, then deploy it again'
      : `upload the artifact as ${name} in the workflow (docs/deploy.md, "Prebuilt artifacts"), or correct artifact.name`,
  );
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: false, strictFileNames: true, validateEntrySizes: true }, (error, zip) =>
      error ? reject(error) : resolve(zip),
    ),
  );
}

function entries(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const found: yauzl.Entry[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      found.push(entry);
      zip.readEntry();
    });
    zip.on('end', () => resolve(found));
    zip.on('error', reject);
    zip.readEntry();
  });
}

/** Write the one tarball the downloaded zip holds to `tarball`; a zip of anything else is refused, named. */
export async function tarballFromZip(zipFile: string, tarball: string, settings: ArtifactSettings): Promise<void> {
  const refused = (why: string, cause?: unknown) =>
    artifactFailure(
      `the artifact ${settings.name} was refused: ${why}`,
      'upload one tarball as the artifact (tar -czf app.tar.gz dist, then actions/upload-artifact with path: app.tar.gz; the workflow in docs/deploy.md)',
      cause,
    );
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(zipFile);
  } catch (error) {
    throw refused(`it is not a readable zip (${(error as Error).message})`, error);
  }
  try {
    const files = (await entries(zip)).filter((entry) => !entry.fileName.endsWith('/'));
    const names = files.map((entry) => entry.fileName).join(', ') || 'nothing';
    const only = files.length === 1 ? files[0]! : undefined;
    if (!only || !/^[\w.+-]+\.(?:tar|tar\.gz|tgz)$/.test(only.fileName)) throw refused(`it must hold one .tar or .tar.gz and holds ${names}`);
    if (only.uncompressedSize > settings.max_bytes) throw refused(`${only.fileName} is larger than artifact.max_bytes (${settings.max_bytes} bytes)`);
    const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
      zip.openReadStream(only, (error, opened) => (error ? reject(error) : resolve(opened))),
    );
    await pipeline(stream, limited(only.fileName, settings.max_bytes), createWriteStream(tarball));
  } catch (error) {
    if (error instanceof DuetError) throw error;
    throw refused(`its tarball could not be read (${(error as Error).message})`, error);
  } finally {
    zip.close();
  }
}
