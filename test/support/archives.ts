import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import yazl from 'yazl';

/** Archives as CI would publish them, built in memory: gzipped tarballs, and the zips GitHub serves Actions artifacts as. */

export interface TarEntry {
  path: string;
  body?: string;
  type?: 'File' | 'Directory' | 'SymbolicLink';
  linkpath?: string;
}

/** A real gzipped tarball, entry by entry through node-tar's Header, so that hostile names stay as written. */
export function tarball(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const type = entry.type ?? 'File';
    const header = new Header({
      path: entry.path,
      type,
      size: type === 'File' ? body.length : 0,
      mode: type === 'Directory' ? 0o755 : 0o644,
      mtime: new Date(0),
      linkpath: entry.linkpath,
    });
    const block = Buffer.alloc(512);
    header.encode(block);
    blocks.push(block);
    if (type === 'File') blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** A real zip of `files` (name to bytes), deflated as actions/upload-artifact makes them. */
export async function zip(files: Record<string, Buffer>): Promise<Buffer> {
  const archive = new yazl.ZipFile();
  for (const [name, bytes] of Object.entries(files)) archive.addBuffer(bytes, name);
  archive.end();
  const chunks: Buffer[] = [];
  for await (const chunk of archive.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
