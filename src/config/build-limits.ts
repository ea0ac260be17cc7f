import { z } from 'zod';

/** build_limits (issue 28): what a build may take of a small server, the machine's and each app's part. */

/**
 * A memory limit as systemd's MemoryHigh=/MemoryMax= take it: a percentage of the machine's RAM
 * ("60%") or bytes (a number, or "1536M", "2G").
 */
const memoryLimit = z.union([
  z.number().int().positive(),
  z.string().regex(/^(?:(?:100|[1-9]?\d)(?:\.\d+)?%|\d+[KMGT]?)$/, 'a percentage of RAM ("60%") or bytes (1073741824, "1024M", "1G")'),
]);

/**
 * What an app may change of build_limits. The memory limits and the concurrency are the machine's,
 * one for all apps: every build runs in the one duet-build.slice, one build at a time by default.
 */
export const appBuildLimitsSchema = z
  .object({
    /** Before its install and build, wait until the machine has this much memory available (0: off). */
    min_free_memory_mb: z.number().int().min(0).optional(),
    /** How long that wait may last before the deploy fails at update. */
    min_free_memory_wait_s: z.number().positive().optional(),
  })
  .strict();

export const BUILD_LIMITS_DEFAULTS = {
  memory_high: '60%',
  memory_max: '75%',
  concurrency: 1,
  min_free_memory_mb: 0,
  min_free_memory_wait_s: 120,
} as const;

export const buildLimitsSchema = appBuildLimitsSchema
  .extend({
    memory_high: memoryLimit.optional(),
    memory_max: memoryLimit.optional(),
    /** Installs and builds across all apps at once; a deploy beyond it waits for a slot. */
    concurrency: z.number().int().positive().optional(),
  })
  .strict();

type MemoryLimit = z.infer<typeof memoryLimit>;
/** build_limits with every default filled in, as an app's install and build get them. */
export type BuildLimits = {
  memory_high: MemoryLimit;
  memory_max: MemoryLimit;
  concurrency: number;
  min_free_memory_mb: number;
  min_free_memory_wait_s: number;
};
