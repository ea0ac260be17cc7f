// Bundles the CLI into dist/bin: duet.mjs plus one chunk per lazily loaded command.
//
// Why: Node 20 spends most of a command's startup resolving and loading ~600 ES module files
// (zod, yaml, execa, simple-git, ...). One bundle with code-split chunks loads the same code
// from a handful of files: `duet status` starts in ~60% of the time, and every deploy and
// rollback pays less before its first step. tsc still type-checks and compiles the tests;
// the tests run the bundle, which is what `duet` is.
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

// Chunk names carry content hashes: without this, old chunks would pile up.
await rm('dist/bin', { recursive: true, force: true });

await build({
  entryPoints: { duet: 'src/cli/main.ts' },
  outdir: 'dist/bin',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // pino starts its pretty-printer in a worker thread that loads these by name from disk.
  external: ['pino', 'pino-pretty'],
  // CommonJS dependencies call require() for Node's built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as duetCreateRequire } from 'node:module'; const require = duetCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
