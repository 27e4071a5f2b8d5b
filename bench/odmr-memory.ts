/**
 * Peak memory of one run that receives ATRN mail from many targets at once into S3 (moto_server):
 * with and without the run's memory budget (lambda/core/memory-budget.ts).
 *
 *   npx tsx bench/odmr-memory.ts [--targets 10] [--mb 30] [--function-mb 256] [--runs 1]
 *
 * Rows: one target delivering one message, then `--targets` targets each delivering one message
 * at the same time (the CLI's and the function's concurrency), without a budget (as before) and
 * with the budget a function of `--function-mb` gets (AWS_LAMBDA_FUNCTION_MEMORY_SIZE); last, the
 * worker path (`--only worker` runs it alone, `--only sessions` leaves it out): the Lambda bundle
 * fed one SQS batch of `--targets` work orders, whose peak is Lambda's Max Memory Used. Each row
 * runs in a child process of its own, this file bundled by esbuild as the Lambda runs its code;
 * the providers (peers/atrn-provider.ts, one per target) stay in this process, so the child's
 * peak RSS (VmHWM) is the receiver's alone: node, the sessions, the S3 sink and its SDK client.
 * It prints a markdown table headed by the command; it asserts nothing (docs/odmr.md records a run).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { MotoServer } from '../peers/servers/moto-server';

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SELF), '..');
const BUNDLE_DIR = join(ROOT, 'bench', 'out', 'odmr-memory');
const MB = 1_000_000;

interface ChildSpec {
  readonly ports: readonly number[];
  readonly endpoint: string;
  readonly bucket: string;
  /** The function's memory the budget is derived from; null: no budget. */
  readonly functionMb: number | null;
}
interface ChildResult {
  readonly ms: number;
  readonly stored: number;
  readonly peakRssMiB: number;
  readonly budgetMiB: number | null;
  readonly errors: string[];
}

async function child(spec: ChildSpec): Promise<ChildResult> {
  const { parseTarget } = await import('../lambda/core/config');
  const { createMailReceiver } = await import('../lambda/core/odmr/reversed-session');
  const { releaseSignal } = await import('../lambda/core/signal/session');
  const { createS3MailSink } = await import('../lambda/adapters/s3-mail-sink');
  const { lambdaMailMemory, MemoryBudget } = await import('../lambda/core/memory-budget');
  const { S3Client } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: spec.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  });
  const memory =
    spec.functionMb === null ? undefined : new MemoryBudget(lambdaMailMemory(spec.functionMb));
  const sink = createS3MailSink({ client, bucket: spec.bucket, memory });
  const receiver = createMailReceiver(sink, { memory });
  const credentials = { get: async () => ({ username: 'customer', password: 'odmr-secret' }) };
  const started = performance.now();
  const reports = await Promise.all(
    spec.ports.map((port, i) =>
      releaseSignal(
        parseTarget(
          {
            name: `t${i}`,
            host: '127.0.0.1',
            port,
            tls: 'none',
            auth: { secretId: 'odmr' },
            command: 'ATRN',
            mail: { domains: ['customer.test'] },
            timeoutSeconds: 120,
          },
          'bench',
        ),
        {},
        { credentials, helloName: 'mx.bench.test', receiver },
      ),
    ),
  );
  const ms = performance.now() - started;
  client.destroy();
  return {
    ms,
    stored: reports.reduce((n, r) => n + r.messages, 0),
    peakRssMiB: peakRssMiB(),
    budgetMiB: memory ? memory.limitBytes / 2 ** 20 : null,
    errors: reports.flatMap((r) => (r.error ? [r.error.message] : [])),
  };
}

async function parent(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      targets: { type: 'string', default: '10' },
      mb: { type: 'string', default: '30' },
      'function-mb': { type: 'string', default: '256' },
      runs: { type: 'string', default: '1' },
      only: { type: 'string' },
    },
  });
  const loadBefore = loadavg();
  const targets = Number(values.targets);
  const size = Number(values.mb) * MB;
  const functionMb = Number(values['function-mb']);
  const runs = Number(values.runs);
  const { AtrnProvider, stuff } = await import('../peers/atrn-provider');
  const { findMotoServer, startMotoServer } = await import('../peers/servers/moto-server');
  if (!findMotoServer()) {
    console.log(
      'moto_server is not installed: nothing to measure (it is preinstalled with pip on the build machines)',
    );
    return;
  }
  const text = makeMessage(size);
  const wire = stuff(text);
  const moto = await startMotoServer();
  const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
  const s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  const bundle = await bundleSelf();
  const cases = [
    { name: `1 x ${values.mb} MB`, targets: 1, functionMb: null },
    { name: `1 x ${values.mb} MB`, targets: 1, functionMb },
    { name: `${targets} x ${values.mb} MB at once`, targets, functionMb: null },
    { name: `${targets} x ${values.mb} MB at once`, targets, functionMb },
  ];
  const rows: string[] = [];
  try {
    for (const c of values.only === 'worker' ? [] : cases) {
      const results: ChildResult[] = [];
      for (let run = 0; run < runs; run++) {
        const providers = await Promise.all(
          Array.from({ length: c.targets }, (_, i) =>
            new AtrnProvider({
              queue: [{ from: `s${i}@origin.test`, to: [`u${i}@customer.test`], text, wire }],
            }).start(),
          ),
        );
        const bucket = `memory-${Date.now()}-${rows.length}-${run}`;
        await s3.send(new CreateBucketCommand({ Bucket: bucket }));
        try {
          results.push(
            await runChild(bundle, {
              ports: providers.map((p) => p.port),
              endpoint: moto.endpoint,
              bucket,
              functionMb: c.functionMb,
            }),
          );
        } finally {
          await Promise.all(providers.map((p) => p.stop()));
        }
      }
      const peak = Math.max(...results.map((r) => r.peakRssMiB));
      const errors = results.flatMap((r) => r.errors);
      const stored = Math.min(...results.map((r) => r.stored));
      const seconds = results.map((r) => r.ms / 1000).sort((a, b) => a - b)[
        Math.floor(results.length / 2)
      ]!;
      rows.push(
        `| ${c.name} | ${c.functionMb === null ? 'none (before)' : `${results[0]!.budgetMiB} MiB (a ${c.functionMb} MB function)`} | ${peak.toFixed(0)} | ` +
          `${stored}/${c.targets} | ${seconds.toFixed(1)} | ${runs} |${errors.length ? ` ${errors[0]} |` : ' |'}`,
      );
    }
    if (values.only !== 'sessions')
      rows.push(await workerRow({ moto, targets, text, wire, functionMb, runs, mb: values.mb }));
  } finally {
    s3.destroy();
    await moto.stop();
  }
  const cpu = cpus();
  console.log(`\`${['npx tsx bench/odmr-memory.ts', ...process.argv.slice(2)].join(' ')}\``);
  console.log('');
  console.log(
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${new Date().toISOString()}, load average ${load(loadBefore)} before, ${load(loadavg())} after, S3 = moto_server on loopback, one provider per target`,
  );
  console.log('');
  console.log('| load | mail memory budget | peak RSS MiB | stored | seconds | runs | notes |');
  console.log('|---|---|---:|---:|---:|---:|---|');
  for (const row of rows) console.log(row);
}

/**
 * The worker path: the Lambda bundle (lib/bundling.ts) on the runtime's node, one SQS batch of
 * `targets` ATRN work orders, each provider holding one message (bench/worker-batch.ts). Peak RSS
 * is the invocation's Max Memory Used.
 */
async function workerRow(c: {
  moto: MotoServer;
  targets: number;
  text: Buffer;
  wire: Buffer;
  functionMb: number;
  runs: number;
  mb: string;
}): Promise<string> {
  const { AtrnProvider } = await import('../peers/atrn-provider');
  const { buildLambdaBundle, createWorkerResources, runWorkerBatch } = await import(
    './worker-batch'
  );
  const { ListObjectsV2Command, S3Client } = await import('@aws-sdk/client-s3');
  const bundleDir = await buildLambdaBundle(join(BUNDLE_DIR, 'lambda'));
  const names = { table: `worker-${Date.now()}`, bucket: `worker-${Date.now()}` };
  await createWorkerResources(c.moto, names);
  const s3 = new S3Client({ ...c.moto.clientConfig, forcePathStyle: true });
  const peaks: number[] = [];
  const seconds: number[] = [];
  const stored: number[] = [];
  const notes: string[] = [];
  let nodeVersion = '';
  try {
    for (let run = 0; run < c.runs; run++) {
      const providers = await Promise.all(
        Array.from({ length: c.targets }, (_, i) =>
          new AtrnProvider({
            queue: [
              {
                from: `s${i}@origin.test`,
                to: [`u${i}@customer.test`],
                text: c.text,
                wire: c.wire,
              },
            ],
          }).start(),
        ),
      );
      try {
        const { invocation, ms, node } = await runWorkerBatch({
          bundleDir,
          moto: c.moto,
          ...names,
          ports: providers.map((p) => p.port),
          memoryMiB: c.functionMb,
        });
        nodeVersion = node.version;
        if (invocation.outcome.error) notes.push(invocation.outcome.error.errorMessage);
        peaks.push(invocation.maxMemoryUsedMiB ?? Number.NaN);
        seconds.push(ms / 1000);
        const listed = await s3.send(
          new ListObjectsV2Command({ Bucket: names.bucket, Prefix: 'mail/' }),
        );
        stored.push(
          (listed.Contents ?? []).filter((o) => o.Key?.endsWith('.eml')).length -
            stored.reduce((a, b) => a + b, 0),
        );
      } finally {
        await Promise.all(providers.map((p) => p.stop()));
      }
    }
  } finally {
    s3.destroy();
  }
  const { lambdaMailMemory } = await import('../lambda/core/memory-budget');
  const median = seconds.sort((a, b) => a - b)[Math.floor(seconds.length / 2)]!;
  return (
    `| ${c.targets} x ${c.mb} MB in one worker batch (Lambda bundle, node ${nodeVersion}) | ` +
    `${lambdaMailMemory(c.functionMb) / 2 ** 20} MiB (a ${c.functionMb} MB function) | ${Math.max(...peaks).toFixed(0)} | ` +
    `${Math.min(...stored)}/${c.targets} | ${median.toFixed(1)} | ${c.runs} | ` +
    `peak ${(Math.max(...peaks) / c.functionMb).toFixed(2)}x the function's memory${notes.length ? `; ${notes[0]}` : ''} |`
  );
}

/** The 1, 5 and 15 minute load averages: the machine is shared, and its load moves the seconds. */
const load = (averages: number[]) => averages.map((l) => l.toFixed(1)).join(' ');

/** VmHWM from /proc (Linux): this process's own peak, not its parent's (see bench/odmr-receive.ts). */
function peakRssMiB(): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

async function bundleSelf(): Promise<string> {
  const { build } = await import('esbuild');
  await build({
    entryPoints: { 'odmr-memory': SELF },
    outdir: BUNDLE_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    mainFields: ['module', 'main'],
    outExtension: { '.js': '.mjs' },
    logLevel: 'error',
    external: ['vitest', 'esbuild'],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
  return join(BUNDLE_DIR, 'odmr-memory.mjs');
}

async function runChild(bundle: string, spec: ChildSpec): Promise<ChildResult> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [bundle, '--child', JSON.stringify(spec)],
    { maxBuffer: 1024 * 1024, timeout: 900_000 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult;
}

/** Mail-like text: headers, then 76-column base64 lines. */
function makeMessage(size: number): Buffer {
  const head = 'Message-ID: <memory.bench@origin.test>\r\nSubject: bench\r\n\r\n';
  const lines: string[] = [];
  let length = head.length;
  while (length < size - 80) {
    const l = `${randomBytes(57).toString('base64')}\r\n`;
    lines.push(l);
    length += l.length;
  }
  return Buffer.from(head + lines.join(''), 'latin1');
}

if (process.argv[2] === '--child') {
  void child(JSON.parse(process.argv[3]!) as ChildSpec).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
} else {
  await parent();
}
