import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { isolationPrefix } from '../../src/instance/build-step.js';
import { repoRoot } from '../../test/support/git-repo.js';
import { ownDir, track } from '../lib/cleanup.js';
import type { DuetEnv } from '../lib/duet-env.js';
import { log } from '../lib/log.js';
import { pacedLoad, type PacedResult } from '../lib/paced-load.js';
import { round } from '../lib/stats.js';

/**
 * Section 7: a build next to the live app. The live color answers `GET /` through nginx at a fixed
 * rate (paced, open-loop) while, beside it, a project the size of nestjs/typescript-starter is
 * built from nothing: `npm ci` of its lockfile (bench/nest-app: the starter's dependencies, about
 * 740 packages from the npm registry, the cache warmed by a first untimed build) and `tsc` of
 * generated NestJS modules. Once with the commands as they are, once under the prefix duet's build
 * wrapper puts before every install, build and prune (src/instance/build-step.ts: chrt --idle 0,
 * ionice -c 3, choom -n 1000). Each load window is the same length, a bit shorter than the
 * unloaded build, so it falls inside the build.
 */

/** Generated feature modules (a module, a controller, a service and a DTO each). */
const MODULES = 30;

/**
 * What a build does, one kind of work at a time, each run twice at once (the machine's two cores)
 * under duet's prefix for as long as a window: which of them idle priority keeps from the live app.
 */
const PARTS = {
  'part: CPU only': () => ['node', '-e', 'for (;;) {}'],
  'part: processes started': () => ['sh', '-c', 'while :; do node -e 0; done'],
  'part: files written and removed': (dir: string, n: number) => [
    'sh',
    '-c',
    'while :; do cp -r node_modules/@nestjs "$1" && rm -rf "$1"; done',
    'sh',
    join(dir, `churn-${n}`),
  ],
} as const;
type PartLabel = keyof typeof PARTS;

export interface IsolationWindow {
  label: 'idle' | 'build, plain' | 'build, duet isolation' | PartLabel;
  round: number;
  buildMs: number | null;
  sent: number;
  failed: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface IsolationResult {
  ratePerS: number;
  windowMs: number;
  packages: number;
  tsFiles: number;
  prefix: string[];
  warmBuildMs: number;
  /** A build still running after this long was stopped (its buildMs is null). */
  deadlineMs: number;
  windows: IsolationWindow[];
}

/** The project's own files besides bench/nest-app's package.json and lockfile (section 7's artifact rows deploy them too). */
export function nestSources(): Record<string, string> {
  const files: Record<string, string> = {};
  const names = Array.from({ length: MODULES }, (_, i) => `feature${i}`);
  for (const name of names) {
    const Name = name[0]!.toUpperCase() + name.slice(1);
    files[`src/${name}/${name}.dto.ts`] =
      `export class Create${Name}Dto {\n  readonly name!: string;\n  readonly count!: number;\n  readonly tags: string[] = [];\n}\n`;
    files[`src/${name}/${name}.service.ts`] =
      `import { Injectable, NotFoundException } from '@nestjs/common';\nimport { Create${Name}Dto } from './${name}.dto';\n\n` +
      `export interface ${Name} { id: number; name: string; count: number; tags: string[] }\n\n@Injectable()\nexport class ${Name}Service {\n` +
      `  private readonly items = new Map<number, ${Name}>();\n  private next = 1;\n\n` +
      `  create(dto: Create${Name}Dto): ${Name} {\n    const item = { id: this.next++, ...dto };\n    this.items.set(item.id, item);\n    return item;\n  }\n\n` +
      `  findAll(tag?: string): ${Name}[] {\n    return [...this.items.values()].filter((item) => tag === undefined || item.tags.includes(tag));\n  }\n\n` +
      `  findOne(id: number): ${Name} {\n    const item = this.items.get(id);\n    if (!item) throw new NotFoundException(\`${name} \${id}\`);\n    return item;\n  }\n}\n`;
    files[`src/${name}/${name}.controller.ts`] =
      `import { Body, Controller, Get, Param, ParseIntPipe, Post, Query } from '@nestjs/common';\nimport { Create${Name}Dto } from './${name}.dto';\nimport { ${Name}, ${Name}Service } from './${name}.service';\n\n` +
      `@Controller('${name}')\nexport class ${Name}Controller {\n  constructor(private readonly service: ${Name}Service) {}\n\n` +
      `  @Post()\n  create(@Body() dto: Create${Name}Dto): ${Name} {\n    return this.service.create(dto);\n  }\n\n` +
      `  @Get()\n  findAll(@Query('tag') tag?: string): ${Name}[] {\n    return this.service.findAll(tag);\n  }\n\n` +
      `  @Get(':id')\n  findOne(@Param('id', ParseIntPipe) id: number): ${Name} {\n    return this.service.findOne(id);\n  }\n}\n`;
    files[`src/${name}/${name}.module.ts`] =
      `import { Module } from '@nestjs/common';\nimport { ${Name}Controller } from './${name}.controller';\nimport { ${Name}Service } from './${name}.service';\n\n` +
      `@Module({ controllers: [${Name}Controller], providers: [${Name}Service], exports: [${Name}Service] })\nexport class ${Name}Module {}\n`;
  }
  const Names = names.map((name) => `${name[0]!.toUpperCase()}${name.slice(1)}Module`);
  files['src/app.module.ts'] =
    `import { Module } from '@nestjs/common';\n${names.map((name, i) => `import { ${Names[i]} } from './${name}/${name}.module';`).join('\n')}\n\n` +
    `@Module({ imports: [${Names.join(', ')}] })\nexport class AppModule {}\n`;
  files['src/main.ts'] =
    `import { NestFactory } from '@nestjs/core';\nimport { AppModule } from './app.module';\n\n` +
    `async function bootstrap(): Promise<void> {\n  const app = await NestFactory.create(AppModule);\n  await app.listen(process.env.PORT ?? 3000);\n}\nvoid bootstrap();\n`;
  // The starter's tsconfig.json.
  files['tsconfig.json'] = `${JSON.stringify(
    {
      compilerOptions: {
        module: 'commonjs',
        declaration: true,
        removeComments: true,
        emitDecoratorMetadata: true,
        experimentalDecorators: true,
        allowSyntheticDefaultImports: true,
        target: 'ES2021',
        sourceMap: true,
        outDir: './dist',
        baseUrl: './',
        incremental: true,
        skipLibCheck: true,
        strictNullChecks: false,
        noImplicitAny: false,
      },
    },
    null,
    2,
  )}\n`;
  files['tsconfig.build.json'] = `${JSON.stringify({ extends: './tsconfig.json', exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'] }, null, 2)}\n`;
  return files;
}

/**
 * A fresh `npm ci` and the build, as duet runs them (with `prefix`) or as they are; its time, or
 * null when it did not finish by `deadlineMs`: a build at idle priority gets next to no CPU while
 * other work keeps the cores busy, and is then stopped (its whole process group) to bound the run.
 */
async function build(dir: string, prefix: readonly string[], deadlineMs = Infinity): Promise<number | null> {
  await rm(join(dir, 'node_modules'), { recursive: true, force: true });
  await rm(join(dir, 'dist'), { recursive: true, force: true });
  await rm(join(dir, 'tsconfig.build.tsbuildinfo'), { force: true });
  const started = performance.now();
  for (const command of ['npm ci --prefer-offline --no-audit --no-fund', 'npm run build']) {
    const argv = [...prefix, 'sh', '-c', command];
    const child = execa(argv[0]!, argv.slice(1), { cwd: dir, stdin: 'ignore', all: true, reject: false, detached: true });
    void track(
      child,
      child.catch(() => undefined),
    );
    const left = deadlineMs - (performance.now() - started);
    const timer = Number.isFinite(left) ? setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), Math.max(0, left)) : undefined;
    const result = await child;
    clearTimeout(timer);
    if (performance.now() - started >= deadlineMs) return null;
    if (result.exitCode !== 0) throw new Error(`\`${command}\` failed (${result.exitCode ?? result.signal}): ${String(result.all).slice(-2000)}`);
  }
  return performance.now() - started;
}

/** One part of a build, twice at once under `prefix`, while `during` runs; stopped after it. */
async function withPart<T>(dir: string, prefix: readonly string[], label: PartLabel, during: () => Promise<T>): Promise<T> {
  const children = [1, 2].map((n) => {
    const argv = [...prefix, ...PARTS[label](dir, n)];
    const child = execa(argv[0]!, argv.slice(1), { cwd: dir, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore', reject: false, detached: true });
    return track(
      child,
      child.catch(() => undefined),
    );
  });
  try {
    return await during();
  } finally {
    for (const child of children) if (child.pid) process.kill(-child.pid, 'SIGKILL');
    await Promise.all(children);
    await Promise.all([1, 2].map((n) => rm(join(dir, `churn-${n}`), { recursive: true, force: true })));
  }
}

const GET: Parameters<typeof pacedLoad>[0]['request'] = {
  method: 'GET',
  path: '/',
  headers: { connection: 'keep-alive' },
  body: Buffer.alloc(0),
  idHeader: 'x-request-id',
  idPrefix: 'iso',
};

function windowOf(label: IsolationWindow['label'], roundNo: number, load: PacedResult, buildMs: number | null): IsolationWindow {
  return {
    label,
    round: roundNo,
    buildMs: round(buildMs, 0),
    sent: load.sent,
    failed: load.sent - load.acks,
    p50Ms: round(load.p50Ms, 2),
    p99Ms: round(load.p99Ms, 2),
    maxMs: round(load.maxMs, 1),
  };
}

export async function runBuildIsolation(root: string, env: DuetEnv, settings: { ratePerS: number; rounds: number }): Promise<IsolationResult> {
  const dir = join(root, 'nest-app');
  ownDir(dir);
  await mkdir(dir, { recursive: true });
  await cp(join(repoRoot(), 'bench', 'nest-app'), dir, { recursive: true });
  const files = nestSources();
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  const prefix = isolationPrefix();
  log('  warming the npm cache: a first build, not measured');
  const warmBuildMs = (await build(dir, []))!;
  log(`  unloaded build: ${(warmBuildMs / 1000).toFixed(1)} s`);
  const windowMs = Math.min(30_000, Math.max(3000, Math.round(warmBuildMs * 0.8)));
  const deadlineMs = Math.max(60_000, 3 * warmBuildMs);
  const port = env.setup.listenPort;
  const load = (idPrefix: string): Promise<PacedResult> =>
    pacedLoad({ port, ratePerS: settings.ratePerS, durationMs: windowMs, request: { ...GET, idPrefix } });
  const windows: IsolationWindow[] = [];
  for (let r = 1; r <= settings.rounds; r += 1) {
    windows.push(windowOf('idle', r, await load(`idle-${r}`), null));
    for (const [label, withPrefix] of [
      ['build, plain', [] as string[]],
      ['build, duet isolation', prefix],
    ] as const) {
      log(`  round ${r}: ${label}`);
      const building = build(dir, withPrefix, deadlineMs);
      const during = await load(`${label === 'build, plain' ? 'plain' : 'iso'}-${r}`);
      windows.push(windowOf(label, r, during, await building));
    }
    for (const label of Object.keys(PARTS) as PartLabel[]) {
      log(`  round ${r}: ${label}`);
      windows.push(windowOf(label, r, await withPart(dir, prefix, label, () => load(`part-${r}`)), null));
    }
  }
  const lockfile = JSON.parse(await readFile(join(dir, 'package-lock.json'), 'utf8')) as { packages: object };
  const packages = Object.keys(lockfile.packages).length - 1;
  await rm(dir, { recursive: true, force: true });
  return {
    ratePerS: settings.ratePerS,
    windowMs,
    packages,
    tsFiles: Object.keys(files).filter((f) => f.endsWith('.ts')).length,
    prefix,
    warmBuildMs: round(warmBuildMs, 0)!,
    deadlineMs: round(deadlineMs, 0)!,
    windows,
  };
}

/** p99 during the builds (and each part of one) over p99 idle, per round: the goal is at most 1.3 with isolation. */
export function isolationRatios(
  result: IsolationResult,
): Array<{ round: number; plain: number | null; isolated: number | null; parts: Array<[PartLabel, number | null]> }> {
  const rounds = [...new Set(result.windows.map((w) => w.round))];
  return rounds.map((r) => {
    const of = (label: IsolationWindow['label']): number | null => result.windows.find((w) => w.round === r && w.label === label)?.p99Ms ?? null;
    const idle = of('idle');
    const ratio = (value: number | null): number | null => (value === null || !idle ? null : round(value / idle, 2));
    const parts = (Object.keys(PARTS) as PartLabel[]).map((label): [PartLabel, number | null] => [label, ratio(of(label))]);
    return { round: r, plain: ratio(of('build, plain')), isolated: ratio(of('build, duet isolation')), parts };
  });
}

/** Section 7's Markdown: the windows, then the ratios against the goal. */
export function isolationDetails(
  result: IsolationResult | undefined,
  failure: string | undefined,
  table: (header: string[], rows: string[][]) => string,
): string {
  if (!result) return `n/a: ${failure ?? 'not run'}`;
  const f = (value: number | null, unit = ' ms'): string => (value === null ? 'n/a' : `${value}${unit}`);
  const rows = result.windows.map((w) => [
    String(w.round),
    w.label,
    w.label === 'idle' || w.label.startsWith('part:')
      ? '—'
      : w.buildMs === null
        ? `not done after ${f(round(result.deadlineMs / 1000, 0), ' s')}, stopped`
        : f(round(w.buildMs / 1000, 1), ' s'),
    String(w.sent),
    String(w.failed),
    f(w.p50Ms),
    f(w.p99Ms),
    f(w.maxMs),
  ]);
  const ratios = isolationRatios(result).map(({ round: r, plain, isolated, parts }) => {
    const goal = isolated === null ? '?' : isolated <= 1.3 ? '✓' : '✗';
    const each = parts.map(([label, ratio]) => `${label.slice('part: '.length)} ${f(ratio, 'x')}`).join(', ');
    return `round ${r}: p99 during the build / idle p99 = ${f(plain, 'x')} plain, ${f(isolated, 'x')} with duet's isolation (goal ≤ 1.3x) ${goal}; each part of a build alone at duet's priority: ${each}`;
  });
  return [
    `The live color, \`GET /\` through nginx at ${result.ratePerS} requests/s (paced), in windows of ${f(round(result.windowMs / 1000, 1), ' s')}, while a fresh \`npm ci\` (${result.packages} packages) and \`tsc\` (${result.tsFiles} files) run beside it; unloaded, that build took ${f(round(result.warmBuildMs / 1000, 1), ' s')}. duet's prefix: \`${result.prefix.join(' ')}\`.`,
    '',
    table(['round', 'window', 'build', 'sent', 'failed', 'p50', 'p99', 'max'], rows),
    '',
    ...ratios.map((line) => `- ${line}`),
  ].join('\n');
}
