import type { Readable, Writable } from 'node:stream';
import { userInfo } from 'node:os';
import { LineSplitter, parseStepRequest, type StepFrame, type StepRequest } from './step-protocol.js';
import { killGroup, stopGroup } from './step-group.js';
import { credentialEnvFiles } from './step-env-files.js';
import { LineMask, SecretMask, maskedValues } from './mask.js';

/**
 * `duet step-runner`: one install or build command for duet, run as app_user. systemd starts it
 * per connection to duet-step.socket with the connection as stdin and stdout (step-protocol.ts).
 * It never reads duet.yml or anything of duet's: what to run comes in the request, and it runs
 * with the request's environment except for who it is (HOME, USER, LOGNAME are the app user's:
 * npm's cache goes to its home, not duet's). An app's own step socket hands it the app's env files
 * (step-env-files.ts): it adds the values the request asks for and masks all of them in what it
 * sends back.
 */

const MAX_REQUEST = 1024 * 1024;

export async function serveStep(input: Readable, output: Writable): Promise<number> {
  // duet may hang up at any moment (that is how it stops a step): writes after it are dropped.
  output.on('error', () => {});
  const send = (frame: StepFrame): void => {
    if (output.writable) output.write(`${JSON.stringify(frame)}\n`);
  };
  let request: StepRequest;
  let files: Record<string, string>;
  try {
    request = parseStepRequest(await firstLine(input));
    files = await credentialEnvFiles();
  } catch (error) {
    send({ error: `step-runner: ${(error as Error).message}` });
    output.end();
    return 2;
  }
  // Every value of the app's env files, whatever the command was given: duet never gets one back.
  const mask = new SecretMask(maskedValues(Object.values(files)));
  if (request.check !== undefined) {
    const env = { ...request.env, ...files };
    send({ missing: request.check.filter((name) => !env[name]) });
  } else if (request.mask !== undefined) {
    send({ out: mask.apply(request.mask) });
    send({ exit: { code: 0, signal: null } });
  } else {
    await runCommand(request, withEnvFiles(request, files), input, send, new LineMask(mask));
  }
  output.end();
  return 0;
}

/** The request's environment with the env files' values it asks for, under what duet sets. */
function withEnvFiles(request: StepRequest, files: Record<string, string>): Record<string, string> {
  if (request.envFiles === undefined) return request.env;
  const { pick, keep } = request.envFiles;
  const picked = pick === '*' ? files : Object.fromEntries(pick.flatMap((name) => (files[name] !== undefined ? [[name, files[name]]] : [])));
  const kept = Object.fromEntries(keep.flatMap((name) => (request.env[name] !== undefined ? [[name, request.env[name]]] : [])));
  return { ...request.env, ...picked, ...kept };
}

async function runCommand(request: StepRequest, env: Record<string, string>, input: Readable, send: (frame: StepFrame) => void, mask: LineMask): Promise<void> {
  const { execa } = await import('execa');
  const me = userInfo();
  const child = execa(request.argv[0]!, request.argv.slice(1), {
    cwd: request.cwd,
    env: { ...env, HOME: me.homedir, USER: me.username, LOGNAME: me.username },
    extendEnv: false,
    stdin: 'ignore',
    all: true,
    buffer: false,
    reject: false,
    // A group of its own, so that everything it started is stopped with it.
    detached: true,
  });
  const pgid = child.pid;
  // duet hung up (timeout, Ctrl-C, killed): the command ends with the connection.
  let stopping: Promise<void> | undefined;
  const hangUp = (): void => {
    if (pgid === undefined || stopping) return;
    if (request.graceMs === undefined) killGroup(pgid);
    else stopping = stopGroup(pgid, request.graceMs);
  };
  input.once('end', hangUp);
  input.once('close', hangUp);
  input.resume();
  const out = (text: string): void => {
    if (text) send({ out: text });
  };
  child.all?.setEncoding('utf8');
  child.all?.on('data', (text: string) => out(mask.push(text)));
  const result = await child;
  out(mask.flush());
  await stopping;
  if (pgid !== undefined) killGroup(pgid); // a background job must not outlive its step
  if (result.exitCode === undefined && result.signal === undefined) {
    send({ error: `step-runner: ${request.argv[0]} did not start: ${result.shortMessage ?? result.message}` });
  } else {
    await leaveWritableForDuet(request.cwd);
    send({ exit: { code: result.exitCode ?? null, signal: result.signal ?? null } });
  }
}

/**
 * What the command created is the app user's; duet, in the same group, removes and replaces it on
 * the next deploy (git clean, a new node_modules), which needs group write on the directories.
 * The unit's UMask=0002 gives that to nearly everything; this catches what chose its own mode
 * (a tarball's 0755). Symlinks are left alone: chmod would follow them.
 */
async function leaveWritableForDuet(dir: string): Promise<void> {
  const { execa } = await import('execa');
  const uid = String(process.getuid?.() ?? '');
  await execa('find', [dir, '-xdev', '-user', uid, '!', '-type', 'l', '!', '-perm', '-g=w', '-exec', 'chmod', 'g+w', '{}', '+'], {
    reject: false,
    stdin: 'ignore',
  });
}

function firstLine(input: Readable): Promise<string> {
  const lines = new LineSplitter(MAX_REQUEST);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      try {
        const [line] = lines.push(chunk.toString());
        if (line === undefined) return;
        input.off('data', onData);
        input.pause();
        resolve(line);
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    input.on('data', onData);
    input.once('end', () => reject(new Error('the connection ended before a request')));
    input.once('error', reject);
  });
}
