import { Webhook } from 'standardwebhooks';
import { z } from 'zod';

/** notify (issue 29): where duet tells the team how a deploy ended. */

const NOTIFY_OUTCOMES = ['succeeded', 'failed', 'errored', 'switched_back', 'failover'] as const;
export type NotifyOutcome = (typeof NOTIFY_OUTCOMES)[number];

/** What a team wants to hear without asking: what went wrong, or was undone without them. */
const DEFAULT_NOTIFY_ON: readonly NotifyOutcome[] = ['failed', 'errored', 'switched_back', 'failover'];

const absolutePath = z.string().regex(/^\//, 'an absolute path');

const notifyTargetSchema = z
  .object({
    format: z.enum(['slack', 'discord', 'ntfy', 'webhook']),
    /** The URL is a credential (a Slack or Discord webhook URL posts as you): read from this file, never duet.yml. */
    url_file: absolutePath,
    /** format webhook: the Standard Webhooks signing secret (whsec_<base64>), in a file of its own. */
    secret_file: absolutePath.optional(),
    on: z.array(z.enum(NOTIFY_OUTCOMES)).min(1).optional(),
    /** The apps it is told about; all when left out. */
    apps: z.array(z.string()).min(1).optional(),
  })
  .strict()
  .superRefine((target, ctx) => {
    if (target.format === 'webhook' && target.secret_file === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['secret_file'],
        message: 'format webhook signs each event (Standard Webhooks): name the file holding the whsec_... secret',
      });
    }
    if (target.format !== 'webhook' && target.secret_file !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['secret_file'], message: `format ${target.format} is not signed: remove secret_file` });
    }
  });

export const notifySchema = z.array(notifyTargetSchema);

export interface NotifyTarget {
  format: 'slack' | 'discord' | 'ntfy' | 'webhook';
  urlFile: string;
  secretFile: string | undefined;
  on: readonly NotifyOutcome[];
  /** undefined: every app. */
  apps: readonly string[] | undefined;
}

/** Defaults filled in; an app it names must exist (a typo would silence it for good). */
export function resolveNotify(raw: z.infer<typeof notifySchema>, appNames: ReadonlySet<string>): { targets: NotifyTarget[]; unknownApp?: string } {
  const targets: NotifyTarget[] = [];
  for (const [index, target] of raw.entries()) {
    const unknown = target.apps?.find((name) => !appNames.has(name));
    if (unknown !== undefined) return { targets, unknownApp: `notify[${index}].apps: no app "${unknown}" in apps` };
    targets.push({
      format: target.format,
      urlFile: target.url_file,
      secretFile: target.secret_file,
      on: target.on ?? DEFAULT_NOTIFY_ON,
      apps: target.apps,
    });
  }
  return { targets };
}

/** url_file's text as the URL to post to, or undefined when it holds none (one http(s) URL alone). */
export function notifyUrlOf(text: string): string | undefined {
  const url = text.trim();
  return /^https?:\/\/[^\s]+$/.test(url) && URL.canParse(url) ? url : undefined;
}

export const SIGNING_SECRET_HINT = 'write whsec_ followed by 24 to 64 random bytes in base64: echo "whsec_$(openssl rand -base64 32)"';

/** secret_file's text as a Standard Webhooks signer; throws with the reason it is none. */
export function webhookSigner(text: string): Webhook {
  const secret = text.trim();
  if (!secret.startsWith('whsec_')) throw new Error('no whsec_ prefix');
  return new Webhook(secret);
}
