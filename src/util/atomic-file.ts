import { readFileSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/**
 * Replace `path` with `content` so that a crash at any instant leaves either the old file or
 * the new one, never a torn mix: write a temp file beside it, fsync it, rename it over the
 * target, then fsync the directory so the rename itself survives a power cut. With `fsync:
 * false` it is still never torn (the rename), but may be lost in a power cut: for files that
 * mean nothing after one, like a pidfile.
 */
export async function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o644, options: { fsync?: boolean } = {}): Promise<void> {
  const durable = options.fsync ?? true;
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(content);
    if (durable) await handle.sync();
  } catch (error) {
    // A temp file half written on a full disk would keep the disk full.
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  if (durable) await fsyncDirectory(dirname(path));
}

export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * For files the kernel or another program writes and that may be gone or unreadable at any
 * moment (/proc entries, a pid file, git's .git/shallow): their text, or undefined for any error.
 */
export function readFileOrUndefinedSync(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export async function readFileIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
