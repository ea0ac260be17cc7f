import { z } from 'zod';

/**
 * source and artifact: deploy what CI built instead of building on the server. duet
 * still checks out the commit (package.json, the lockfile, the start command); the artifact adds
 * the built files, checked against their published SHA-256 and extracted under `contains` only.
 */

/** A relative path of the checkout that an artifact may fill: no `..`, no .git, no node_modules (the install's). */
const containedPath = z
  .string()
  .min(1)
  .refine(
    (path) => !path.startsWith('/') && !path.split('/').some((part) => part === '..' || part === '.' || part === '.git' || part === 'node_modules'),
    'a relative path inside the checkout (no "..", ".git" or node_modules), such as dist',
  );

export const artifactSchema = z
  .object({
    /**
     * release_asset: the asset's file name, a tarball (.tar, .tar.gz, .tgz) built by CI.
     * actions_artifact: the name the workflow uploaded it under (actions/upload-artifact's `name`).
     */
    name: z.string().regex(/^[\w.+-]+$/, 'a file name such as app.tar.gz'),
    /** actions_artifact: the workflow that builds it (its file, build.yml); any workflow when absent. */
    workflow: z
      .string()
      .regex(/^[\w.-]+\.ya?ml$/, 'the workflow file name under .github/workflows, such as build.yml')
      .optional(),
    /** The paths of the checkout the archive may write (each removed first); any other entry refuses it. */
    contains: z.array(containedPath).min(1).default(['dist']),
    /** Limits on what the archive may unpack to. */
    max_bytes: z
      .number()
      .int()
      .positive()
      .default(1024 ** 3),
    max_files: z.number().int().positive().default(100_000),
  })
  .strict();

export type ArtifactSettings = z.infer<typeof artifactSchema>;

/** Adds the checks of source and artifact to the app's schema (schema.ts). */
export function checkArtifactSource(app: { source: string; artifact?: ArtifactSettings; repo?: string }, ctx: z.RefinementCtx): void {
  if (app.source === 'git') {
    if (app.artifact !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['artifact'],
        message: 'is used with source: release_asset or actions_artifact only; remove it or set source',
      });
    return;
  }
  if (app.source === 'release_asset' && app.artifact?.workflow !== undefined)
    ctx.addIssue({ code: 'custom', path: ['artifact', 'workflow'], message: 'names the workflow of source: actions_artifact; a release asset has none' });
  if (app.artifact === undefined)
    ctx.addIssue({ code: 'custom', path: ['artifact'], message: `source: ${app.source} needs artifact.name, the asset to deploy` });
  if (app.repo === undefined)
    ctx.addIssue({ code: 'custom', path: ['repo'], message: `source: ${app.source} needs repo ("owner/name"): duet asks GitHub for the artifact` });
}

/**
 * git: build on the server. release_asset: the asset of the GitHub release of the deployed tag.
 * actions_artifact: the artifact of a successful GitHub Actions run for the deployed commit.
 */
export const sourceSchema = z.enum(['git', 'release_asset', 'actions_artifact']).default('git');
