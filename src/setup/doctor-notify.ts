import { readFile } from 'node:fs/promises';
import { notifyUrlOf, SIGNING_SECRET_HINT, webhookSigner, type NotifyTarget } from '../config/notify.js';
import { fail, pass, type CheckResult, type DoctorContext } from './doctor-context.js';
import { secretFileProblem } from './doctor-env.js';
import { underRoot } from './layout.js';
import { isRoot, lookupUser } from './system.js';

/**
 * Each notify target's files, checked as duet serve will read them (src/notify/send.ts): duet's
 * user's, mode 0600, the URL an http(s) URL and a webhook's secret a Standard Webhooks key. A
 * target that cannot be read tells nobody, and only the first failed deploy would show it.
 * No value is printed.
 */
export async function checkNotify(ctx: DoctorContext, target: NotifyTarget, index: number): Promise<CheckResult> {
  const name = `notify[${index}] ${target.format}`;
  const owner = ctx.setup.user;
  const ownerUid = (await lookupUser(owner, ctx.root))?.uid;
  for (const path of [target.urlFile, ...(target.secretFile ? [target.secretFile] : [])]) {
    const problem = await secretFileProblem(ctx, name, path, owner, ownerUid, path === target.urlFile ? 'the URL on one line' : 'whsec_ and the key');
    if (problem) return problem;
  }
  const read = (path: string): Promise<string | undefined> => readFile(underRoot(ctx.root, path), 'utf8').catch(() => undefined);
  const text = await read(target.urlFile);
  if (text === undefined) return pass(name, `files ${owner}'s, mode 0600 (not readable here${isRoot() ? '' : ': run sudo duet doctor'} to check the URL)`);
  const url = notifyUrlOf(text);
  if (url === undefined) return fail(name, `${target.urlFile} does not hold an http(s) URL`, 'write the URL alone on one line');
  if (target.secretFile !== undefined) {
    try {
      webhookSigner((await read(target.secretFile)) ?? '');
    } catch (error) {
      return fail(name, `${target.secretFile} does not hold a Standard Webhooks secret (${(error as Error).message})`, SIGNING_SECRET_HINT);
    }
  }
  const apps = target.apps ? target.apps.join(', ') : 'every app';
  return pass(name, `posts to ${new URL(url).host} on ${target.on.join(', ')} of ${apps}${target.secretFile ? ', signed' : ''}`);
}
