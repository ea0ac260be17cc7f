import { z } from 'zod';

/**
 * deploy_on.wait_for_checks (issue 29): a push deploys once its commit's CI is green. Off when
 * left out; `{}` waits for every check with the defaults.
 */
export const waitForChecksSchema = z
  .object({
    /** all: every check run and commit status the commit gets; or the check runs of these names. */
    checks: z.union([z.literal('all'), z.array(z.string().min(1).max(200)).min(1)]).default('all'),
    timeout_s: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .default(1800),
    /** Update and build the idle color while CI runs; the switch still waits for green. */
    prepare_while_waiting: z.boolean().default(true),
    /** Between webhooks, how often GitHub is asked (a conditional request: an unchanged answer costs no rate limit). */
    poll_s: z.number().int().min(1).max(3600).default(30),
  })
  .strict();
