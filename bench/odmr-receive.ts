/**
 * Receiving held mail after ATRN: throughput and peak memory, beside Postfix.
 *
 *   npx tsx bench/odmr-receive.ts [--runs 3] [--s3-runs 1]
 *       [--only raw-files,null,sync-file,sync-pair,dir,postfix,s3] [--load large|small]
 *       [--pipelining] [--cpu-prof DIR]
 *
 * Two loads, each through the whole path (ATRN on loopback to the in-process provider of
 * peers/atrn-provider.ts, the reversed session, the sink): one 50 MB message, and 1,000
 * messages of 50 KB. Into the mail directory (fsync and rename per message) and into S3
 * (moto_server, when installed). The anchor is a private Postfix's smtpd (bench/postfix-peer.ts)
 * taking the very same sessions from the same provider (its client side, without the ATRN before
 * it) into its queue, each message fsynced before its 250: the same promise, from the server
 * people would run instead. Beside them, a raw loopback socket copy of the same bytes, the
 * dot-stuffed wire of every message back to back, read and dropped: what the machine can move
 * at all, measured in the same run; and that copy again with each message made durable the way
 * the mail directory does it (a file, fsync, rename, directory fsync, a background fdatasync every
 * 8 MiB) but without SMTP, with synchronous calls on one thread: what the disk allows. `sync-file`
 * is the SMTP dialogue with each message then made durable exactly as raw-files does it
 * (synchronous calls, no envelope): a bound no store behind SMTP with that promise can beat.
 * Rows by default: raw, raw-files, sync-file, dir, postfix, s3. `--only null` adds the SMTP
 * dialogue alone, into a sink that stores nothing: what the session costs before any disk;
 * `--only sync-pair` sync-file with the envelope's file as well (what the mail directory stores).
 * The closing lines check the goals: the mail directory at least 1.5x Postfix and 0.8x sync-file.
 *
 * --load large|small runs one load; --pipelining makes the provider send MAIL, RCPT and DATA in
 * one write (RFC 2920), as Postfix does; --cpu-prof DIR has each child write a V8 CPU profile.
 * The directories written are removed at the end, not after each run: on ext4 without a journal
 * (the build machine's), creating a file skips every inode freed in the last minute, so deleting
 * one run's 2,000 files made the next run's creations slower (bench/README.md, History). For a comparison with
 * another source tree, bench/odmr-receive-ab.ts alternates the two in one invocation.
 *
 * Each case runs in a child process of its own (the provider stays in this one), so the peak
 * RSS (VmHWM) is the receiver's alone. The child runs bench/odmr-receive-child.ts bundled by esbuild, as the
 * Lambda runs its code, not through tsx (whose TypeScript loader alone holds some 40 MiB): its
 * memory is node, the session, the sink and its SDK client. Throughput is message bytes over the wall time of the child's work (connect to the
 * end of the session; node's start-up excluded); the median of the runs is shown, the peak RSS
 * is the highest of the runs. It prints a markdown table headed by the command; it asserts
 * nothing (docs/odmr.md keeps the current run).
 */
import { execFile } from 'node:child_process';
import type { PostfixInstance } from '../peers/servers/postfix';
import type { ChildResult, ChildSpec, Sink } from './odmr-receive-child';
import { instanceCpu, postfixMissing, purge, startBenchPostfix } from './postfix-peer';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SELF), '..');
const BUNDLE_DIR = join(ROOT, 'bench', 'out', 'odmr-receive');
const MB = 1_000_000;

async function parent(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      runs: { type: 'string', default: '3' },
      's3-runs': { type: 'string', default: '1' },
      only: { type: 'string' },
      load: { type: 'string' },
      pipelining: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
    },
  });
  const only = values.only ? new Set(values.only.split(',')) : null;
  // Each child writes a V8 CPU profile there (open it in Chrome DevTools or speedscope).
  if (values['cpu-prof'])
    nodeFlags.push(
      '--cpu-prof',
      '--cpu-prof-interval',
      '100',
      '--cpu-prof-dir',
      values['cpu-prof'],
    );
  const runs = Number(values.runs);
  const s3Runs = Number(values['s3-runs']);
  const { AtrnProvider, stuff, writeSlowly } = await import('../peers/atrn-provider');
  const { findMotoServer, startMotoServer } = await import('../peers/servers/moto-server');

  const loads = [
    { name: '1 x 50 MB', messages: makeMessages(1, 50 * MB) },
    { name: '1,000 x 50 KB', messages: makeMessages(1000, 50_000) },
  ]
    .filter((_, i) => !values.load || values.load === ['large', 'small'][i])
    .map((load) => {
      const held = load.messages.map((text, i) => ({
        from: `s${i}@origin.test`,
        to: [`u${i}@customer.test`],
        text,
        wire: stuff(text),
      }));
      return {
        ...load,
        held,
        bytes: load.messages.reduce((n, m) => n + m.length, 0),
        wire: Buffer.concat(held.map((h) => h.wire)),
      };
    });

  const loadBefore = loadavg();
  const moto = findMotoServer() ? await startMotoServer() : null;
  // Nothing listens on the discard port: the mail stays held (defer_transports) until purged.
  const postfix = postfixMissing ? null : await startBenchPostfix(9);
  if (postfixMissing) console.error(`no Postfix rows: ${postfixMissing}`);
  const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
  const s3 = moto ? new S3Client({ ...moto.clientConfig, forcePathStyle: true }) : null;
  const child = await bundleSelf();
  const rows: string[] = [];
  const verdicts: string[] = [];
  // Removed at the very end, not after each run: on ext4 without a journal (this machine's),
  // creating a file skips every inode freed in the last minute, reading each one, so deleting
  // the 2,000 files of one run made every file of the next cost up to 0.4 ms more.
  const used: string[] = [];
  try {
    for (const load of loads) {
      // The raw copy always runs: every other row is read against it.
      // 'null' (the SMTP dialogue with a sink that stores nothing) runs only when asked for.
      const sinks = (
        [
          'raw',
          'raw-files',
          'null',
          'sync-file',
          'sync-pair',
          'dir',
          ...(postfix ? (['postfix'] as const) : []),
          ...(moto ? (['s3'] as const) : []),
        ] as Case[]
      ).filter((k) => k === 'raw' || (only ? only.has(k) : !['null', 'sync-pair'].includes(k)));
      const results = new Map<Case, ChildResult[]>(sinks.map((sink) => [sink, []]));
      // Runs interleaved (raw, dir, s3, raw, dir, ...) so that machine noise hits every case alike.
      for (let run = 0; run < Math.max(runs, s3Runs); run++) {
        for (const sink of sinks) {
          if (run >= (sink === 's3' ? s3Runs : runs)) continue;
          const list = results.get(sink)!;
          if (sink === 'raw' || sink === 'raw-files') {
            const server = createServer((socket) => {
              socket.on('error', () => undefined);
              void writeSlowly(socket, load.wire, 64 * 1024).then(() => socket.end());
            });
            await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
            const dir =
              sink === 'raw-files'
                ? await mkdtemp(join(tmpdir(), 'dequeue-bench-raw-'))
                : undefined;
            const port = (server.address() as AddressInfo).port;
            const pieces = sink === 'raw-files' ? load.held.map((h) => h.wire.length) : undefined;
            list.push(
              await runChild(child, {
                sink,
                port,
                messages: load.held.length,
                bytes: load.bytes,
                dir,
                pieces,
              }),
            );
            server.close();
            if (dir) used.push(dir);
            continue;
          }
          const provider = await new AtrnProvider({
            queue: load.held,
            pipelining: values.pipelining,
          }).start();
          if (sink === 'postfix') {
            try {
              list.push(await receiveIntoPostfix(postfix!, provider, load.bytes));
            } finally {
              await provider.stop();
              await purge(postfix!);
            }
            continue;
          }
          const dir =
            sink === 'dir' || sink.startsWith('sync-')
              ? await mkdtemp(join(tmpdir(), 'dequeue-bench-'))
              : undefined;
          let s3Spec;
          if (sink === 's3') {
            const bucket = `bench-${Date.now()}-${run}`;
            await s3!.send(new CreateBucketCommand({ Bucket: bucket }));
            s3Spec = { endpoint: moto!.endpoint, bucket };
          }
          try {
            list.push(
              await runChild(child, {
                sink,
                port: provider.port,
                messages: load.held.length,
                bytes: load.bytes,
                dir,
                s3: s3Spec,
              }),
            );
          } finally {
            await provider.stop();
            if (dir) used.push(dir);
          }
        }
      }
      const raw = median(results.get('raw')!.map(rate));
      for (const [sink, list] of results) {
        const mbps = median(list.map(rate));
        const failed = list.find((r) => r.error || r.stored !== load.held.length);
        const atStart = median(list.map((r) => r.startRssMiB));
        rows.push(
          `| ${load.name} | ${LABEL[sink]} | ${mbps.toFixed(0)} | ${sink === 'raw' ? '1.00' : (mbps / raw).toFixed(2)} | ` +
            `${list.some((r) => Number.isNaN(r.peakRssMiB)) ? '-' : Math.max(...list.map((r) => r.peakRssMiB)).toFixed(0)} | ${Number.isNaN(atStart) ? '-' : atStart.toFixed(0)} | ` +
            `${median(list.map((r) => (r.cpuMs * 1000) / load.held.length)).toFixed(0)} | ${list.length} |` +
            (failed ? ` ${failed.stored} stored: ${failed.error ?? 'short'} |` : ' |'),
        );
      }
      const ratio = (a: Case, b: Case) => {
        const x = results.get(a);
        const y = results.get(b);
        return x?.length && y?.length ? median(x.map(rate)) / median(y.map(rate)) : null;
      };
      const goal = (what: string, value: number | null, least: number) =>
        value === null
          ? `${what}: not measured`
          : `${what} ${value.toFixed(2)}x (goal ${least}x: ${value >= least ? 'met' : 'NOT met'})`;
      verdicts.push(
        `- ${load.name}: ${goal('mail directory / Postfix', ratio('dir', 'postfix'), 1.5)}; ${goal('mail directory / sync-file', ratio('dir', 'sync-file'), 0.8)}`,
      );
    }
  } finally {
    for (const dir of used) await rm(dir, { recursive: true, force: true });
    s3?.destroy();
    await moto?.stop();
    await postfix?.stop();
  }

  const cpu = cpus();
  console.log(`\`${['npx tsx bench/odmr-receive.ts', ...process.argv.slice(2)].join(' ')}\``);
  console.log('');
  console.log(
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${new Date().toISOString()}, load average ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ${loadavg()
      .map((l) => l.toFixed(1))
      .join(
        ' ',
      )} after, mail directory under ${tmpdir()}${moto ? ', S3 = moto_server on loopback' : ', moto_server missing: no S3 rows'}`,
  );
  console.log('');
  console.log(
    '| load | into | MB/s (median) | x raw copy | peak RSS MiB | RSS at start MiB | receiver CPU us per message | runs | notes |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---|');
  for (const row of rows) console.log(row);
  console.log('');
  for (const line of verdicts) console.log(line);
}

/**
 * The same session (peers/atrn-provider.ts's client side, byte for byte) into Postfix's smtpd:
 * each message in its queue, fsynced, before its 250. Timed from connect to the end of the
 * session, as a child times its own; CPU is the instance's, all processes (no memory: see
 * bench/postfix-peer.ts).
 */
async function receiveIntoPostfix(
  postfix: PostfixInstance,
  provider: { deliverTo(port: number): Promise<void>; readonly acknowledged: readonly unknown[] },
  bytes: number,
): Promise<ChildResult> {
  const before = instanceCpu(postfix);
  const started = performance.now();
  await provider.deliverTo(postfix.port);
  const ms = performance.now() - started;
  return {
    ms,
    bytes,
    stored: provider.acknowledged.length,
    startRssMiB: Number.NaN,
    peakRssMiB: Number.NaN,
    cpuMs: instanceCpu(postfix, before.sample).ms,
    error: null,
  };
}

/** A row: a child's sink, or Postfix's smtpd (run from this process). */
type Case = Sink | 'postfix';

const LABEL: Record<Case, string> = {
  postfix: 'Postfix smtpd into its queue (fsynced), same sessions',
  raw: 'raw loopback socket copy',
  'raw-files': 'raw copy, a durable file per message (no SMTP)',
  null: 'SMTP dialogue alone (a sink that stores nothing)',
  'sync-file': 'SMTP, then a durable file per message as raw-files makes it (bound)',
  'sync-pair': 'the same with its envelope file too (bound)',
  dir: 'mail directory (--mail-dir)',
  s3: 'S3 (moto_server)',
};

const rate = (r: ChildResult) => r.bytes / MB / (r.ms / 1000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The child as it runs: one ESM bundle (dynamic imports split off), no tsx. */
async function bundleSelf(): Promise<string> {
  const { build } = await import('esbuild');
  await build({
    entryPoints: { 'odmr-receive-child': join(dirname(SELF), 'odmr-receive-child.ts') },
    outdir: BUNDLE_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    mainFields: ['module', 'main'],
    outExtension: { '.js': '.mjs' },
    logLevel: 'error',
    // Only the parent reaches these (the test peers, the bundler itself).
    external: ['vitest', 'esbuild'],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
  return join(BUNDLE_DIR, 'odmr-receive-child.mjs');
}

/** Node flags for every child (--cpu-prof). */
const nodeFlags: string[] = [];

async function runChild(bundle: string, spec: ChildSpec): Promise<ChildResult> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...nodeFlags, bundle, '--child', JSON.stringify(spec)],
    {
      maxBuffer: 1024 * 1024,
      timeout: 600_000,
    },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult;
}

/** Mail-like text: headers, then 76-column base64 lines, a few of them starting with a dot. */
function makeMessages(count: number, size: number): Buffer[] {
  const line = (i: number) =>
    `${(i % 97 === 0 ? '.' : '') + randomBytes(57).toString('base64')}\r\n`;
  const body: string[] = [];
  let length = 0;
  for (let i = 0; length < size - 200; i++) {
    const l = line(i);
    body.push(l);
    length += l.length;
  }
  const shared = Buffer.from(body.join(''), 'latin1');
  return Array.from({ length: count }, (_, i) => {
    const head = Buffer.from(
      `Message-ID: <${i}.bench@origin.test>\r\nSubject: bench ${i}\r\n\r\n`,
      'latin1',
    );
    return Buffer.concat([head, shared.subarray(0, Math.max(0, size - head.length))]);
  });
}

await parent();
