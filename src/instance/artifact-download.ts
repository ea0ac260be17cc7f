import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Octokit } from '@octokit/rest';
import { DuetError } from '../errors.js';

/** What the two artifact sources (release-asset.ts, actions-artifact.ts) share: their failures and the download of bytes. */

/** An artifact found on GitHub, not yet downloaded. */
export interface LocatedArtifact {
  /** How messages name it: "app.tar.gz of release v2", "artifact app of run 41". */
  label: string;
  size: number;
  /** The published SHA-256 of what `open` streams, in lowercase hex. */
  expected: string;
  open(): Promise<Readable>;
  /** A zip holding the tarball (how GitHub serves an Actions artifact). */
  zipped: boolean;
}

/** The API client asks; the download client, with a timeout that covers a large body, downloads. */
export interface ArtifactClients {
  api: Octokit;
  download: Octokit;
}

const UNTOUCHED = 'live traffic is untouched';

export function artifactFailure(message: string, hint: string, cause?: unknown): DuetError {
  return new DuetError(message, { step: 'update', hint: `${hint}; ${UNTOUCHED}`, cause });
}

export function statusOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { status?: unknown }).status === 'number'
    ? (error as { status: number }).status
    : undefined;
}

/** The body of a GitHub download route; GitHub answers 302 to its storage, which fetch follows without the token. */
export async function downloadStream(client: Octokit, route: string, params: Record<string, string | number>, label: string): Promise<Readable> {
  try {
    const response = await client.request(route, {
      ...params,
      headers: { accept: 'application/octet-stream' },
      request: { parseSuccessResponseBody: false },
    });
    // parseSuccessResponseBody: false leaves the body unread: fetch's stream, not JSON.
    const body: unknown = response.data;
    return Readable.fromWeb(body as WebReadableStream<Uint8Array>);
  } catch (error) {
    throw artifactFailure(`cannot download ${label} from GitHub: ${(error as Error).message}`, 'check DUET_GITHUB_TOKEN and that it still exists', error);
  }
}

/** Passes at most `maxBytes`, then fails the stream: a download is never larger than artifact.max_bytes. */
export function limited(label: string, maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > maxBytes)
        done(artifactFailure(`${label} is larger than artifact.max_bytes (${maxBytes} bytes)`, 'raise artifact.max_bytes or make the artifact smaller'));
      else done(null, chunk);
    },
  });
}

/** "sha256:<hex>", as GitHub publishes a release asset's or an Actions artifact's digest, in lowercase hex; undefined otherwise. */
export function sha256Of(digest: string | null | undefined): string | undefined {
  return /^sha256:([0-9a-f]{64})$/i.exec(digest ?? '')?.[1]?.toLowerCase();
}
