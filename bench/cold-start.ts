/**
 * Cold start of the Lambda handler: bundle size and module-load time.
 *
 *   npx tsx bench/cold-start.ts [--runs 15]
 *
 * Bundles lambda/handler.ts three ways and measures, in one run, the median time a fresh `node`
 * process takes to `await import()` each bundle (process.hrtime around the import only; node's own
 * start-up is excluded), the processes interleaved so that machine noise hits every variant alike:
 *
 * - ours:        exactly the stack's esbuild options (lib/bundling.ts): AWS SDK v3 bundled in, but
 *                the six credential providers Lambda never reaches left external;
 * - ours, as deployed: the same bundle loaded with `--enable-source-maps`, which the stack sets in
 *                NODE_OPTIONS: the figure that matters;
 * - naive:       the same entry, no minification, no tree shaking, packages' CommonJS builds
 *                (`mainFields: ['main']`), nothing external: the whole SDK bundled;
 * - runtime SDK: the stack's options but `@aws-sdk/*` and `@smithy/*` left external, loaded from
 *                node_modules at run time, as a bundle relying on the Lambda runtime's own copy of
 *                the SDK would (here the local install stands in for /var/runtime/node_modules).
 *
 * The closing line checks ours, as deployed and as built, against the goal: module load at most
 * half of naive's, and under 100 ms median.
 *
 * Prints a markdown table headed by the command that made it. It asserts nothing: figures vary
 * by machine; docs/lambda.md records one run and the decision taken from it.
 */
import { build, type BuildOptions } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { lambdaEsbuildOptions } from '../lib/bundling';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', 'out', 'cold-start');
const ENTRY = join(ROOT, 'lambda', 'handler.ts');

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 200)
  throw new Error(`--runs ${values.runs}: must be a whole number from 1 to 200`);

interface Variant {
  readonly name: string;
  readonly how: string;
  readonly options: BuildOptions;
  /** Node flags the process loads it with (the stack sets NODE_OPTIONS=--enable-source-maps). */
  readonly nodeArgs?: readonly string[];
  /** Load the bundle built for the variant at this index instead of building one. */
  readonly sameBundleAs?: number;
}

const stack = lambdaEsbuildOptions as BuildOptions;

const variants: Variant[] = [
  {
    name: 'ours',
    how: 'lib/bundling.ts options: ESM, minified, tree-shaken, SDK bundled except the 6 credential providers Lambda never reaches',
    options: { ...stack },
  },
  {
    name: 'ours, as deployed',
    how: 'the same bundle, loaded with --enable-source-maps as the stack sets it',
    options: stack,
    nodeArgs: ['--enable-source-maps'],
    sameBundleAs: 0,
  },
  {
    name: 'naive',
    how: 'no minify, no tree shaking, CommonJS builds (mainFields main), nothing external: SDK bundled whole',
    // Nothing external: the baseline must not inherit the stack's choices (the 6 providers).
    options: {
      ...stack,
      minify: false,
      treeShaking: false,
      sourcemap: false,
      mainFields: ['main'],
      external: [],
    },
  },
  {
    name: 'runtime SDK',
    how: 'our options, @aws-sdk/* and @smithy/* external (loaded from node_modules at run time)',
    options: { ...stack, external: ['@aws-sdk/*', '@smithy/*'] },
  },
];

interface Built {
  readonly variant: Variant;
  readonly file: string;
  readonly bytes: number;
  readonly gzipBytes: number;
  readonly times: number[];
}

async function bundle(variant: Variant, index: number): Promise<Built> {
  if (variant.sameBundleAs !== undefined) index = variant.sameBundleAs;
  const dir = join(OUT, String(index));
  mkdirSync(dir, { recursive: true });
  // `.mjs`, as NodejsFunction names its ESM output.
  const file = join(dir, 'index.mjs');
  if (variant.sameBundleAs === undefined)
    await build({ ...variant.options, entryPoints: [ENTRY], outfile: file, logLevel: 'error' });
  const bytes = statSync(file).size;
  return { variant, file, bytes, gzipBytes: gzipSync(readFileSync(file)).length, times: [] };
}

/** One fresh process: the time `await import(bundle)` takes, in ms. */
function loadOnce(file: string, nodeArgs: readonly string[] = []): number {
  const script = [
    'const start = process.hrtime.bigint();',
    `await import(${JSON.stringify(pathToFileURL(file).href)});`,
    'process.stdout.write(String(Number(process.hrtime.bigint() - start) / 1e6));',
  ].join('\n');
  const run = spawnSync(
    process.execPath,
    [...nodeArgs, '--input-type=module', '--no-warnings', '-e', script],
    {
      encoding: 'utf8',
      // What the module sees at load in Lambda; it must read nothing of it at import time anyway.
      env: { PATH: process.env.PATH, AWS_REGION: 'us-east-1', DEQUEUE_COUNTER_TABLE: 'bench' },
      timeout: 60_000,
    },
  );
  if (run.status !== 0) throw new Error(`loading ${file} failed: ${run.stderr}`);
  return Number(run.stdout);
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

// One after another: variants sharing a bundle must find it written.
const built: Built[] = [];
for (const [i, variant] of variants.entries()) built.push(await bundle(variant, i));
// Warm the file cache once, then interleave the variants run by run.
for (const b of built) loadOnce(b.file, b.variant.nodeArgs);
for (let run = 0; run < RUNS; run++)
  for (const b of built) b.times.push(loadOnce(b.file, b.variant.nodeArgs));

const [ours, deployed, naive] = built;
const verdict = (b: Built) => {
  const ms = median(b.times);
  const ratio = ms / median(naive!.times);
  return `${ms.toFixed(1)} ms, ${ratio.toFixed(2)}x naive (${ratio <= 0.5 && ms < 100 ? 'met' : 'NOT met'})`;
};
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'unknown';
  }
})();

const lines = [
  `\`npx tsx bench/cold-start.ts --runs ${RUNS}\` — node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, commit ${commit}, ${new Date().toISOString().slice(0, 10)}`,
  '',
  '| bundle | how | size | gzip | load median | load min | load max |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ...built.map(
    (b) =>
      `| ${b.variant.name} | ${b.variant.how} | ${kib(b.bytes)} | ${kib(b.gzipBytes)} | ${median(b.times).toFixed(1)} ms | ${Math.min(...b.times).toFixed(1)} ms | ${Math.max(...b.times).toFixed(1)} ms |`,
  ),
  '',
  `Goal: load at most half of naive's and under 100 ms median. ` +
    `ours, as deployed: ${verdict(deployed!)}; ours: ${verdict(ours!)}. ` +
    `Size ours/naive: ${(ours!.bytes / naive!.bytes).toFixed(2)}x.`,
];
process.stdout.write(`${lines.join('\n')}\n`);
