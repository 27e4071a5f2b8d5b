/**
 * The mail-directory receive path of two source trees, side by side: before and after a change.
 *
 *   mkdir /tmp/base && git archive <base> | tar -x -C /tmp/base
 *   npx tsx bench/odmr-receive-ab.ts --base /tmp/base [--runs 6] [--load large|small] [--pipelining]
 *
 * The base tree needs no node_modules of its own: packages it imports are taken from this tree's
 * (a symlinked node_modules is how `npm ci` in one tree once wiped another's).
 *
 * bench/odmr-receive.ts measures one tree, and on a shared two-vCPU machine its figures move by
 * 15% from one invocation to the next: as much as a change may gain. Here the receiver (session
 * and mail-directory sink, the signal session before them) is bundled from each tree, and the
 * runs alternate (base, this tree, base, ...) against the same provider, so that the machine's
 * mood hits both alike. Same loads as odmr-receive.ts: one 50 MB message, or 1,000 of 50 KB.
 * Directories are removed only at the end (see odmr-receive.ts: deleting files makes the next
 * ones slower to create on this machine). Prints each run and the medians, and the receiving
 * process's CPU time per message (its thread pool's included), which moves less with the machine's
 * load than the throughput does, and the time from the final dot to stored; asserts nothing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { build } from 'esbuild';
import { AtrnProvider, stuff } from '../peers/atrn-provider';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'bench', 'out', 'odmr-receive-ab');

/** The receiving child: ATRN to the provider, the turned session into a mail directory. */
const CHILD = `
  const spec = JSON.parse(process.argv[2]);
  const { parseTarget } = await import('./lambda/core/config');
  const { createMailReceiver } = await import('./lambda/core/odmr/reversed-session');
  const { releaseSignal } = await import('./lambda/core/signal/session');
  const { createMailDirSink } = await import('./cli/adapters/mail-dir-sink');
  const target = parseTarget({ name: 'bench', host: '127.0.0.1', port: spec.port, tls: 'none', auth: { secretId: 'odmr' }, command: 'ATRN', mail: { domains: ['customer.test'] }, timeoutSeconds: 60 }, 'bench');
  const credentials = { get: async () => ({ username: 'customer', password: 'odmr-secret' }) };
  const started = performance.now();
  const cpu = process.cpuUsage();
  // Each commit timed (the final dot to stored): the drafts pass through untouched otherwise.
  const commits = [];
  const timed = (draft) => ({
    withdrawable: draft.withdrawable, write: (chunks) => draft.write(chunks), abort: () => draft.abort(),
    commit: () => { const at = performance.now(); return draft.commit().then((r) => (commits.push(performance.now() - at), r)); },
  });
  const inner = createMailDirSink(spec.dir);
  const sink = { begin: (envelope) => inner.begin(envelope).then(timed) };
  if (inner.transaction) sink.transaction = (mail) => { const tx = inner.transaction(mail); return { recipient: (a) => tx.recipient(a), abandon: () => tx.abandon(), begin: (e) => tx.begin(e).then(timed) }; };
  const report = await releaseSignal(target, {}, { credentials, helloName: 'mx.bench.test', receiver: createMailReceiver(sink) });
  const used = process.cpuUsage(cpu);
  commits.sort((a, b) => a - b);
  console.log(JSON.stringify({ ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000, sysMs: used.system / 1000, commitMs: commits[commits.length >> 1] ?? 0, stored: report.messages, error: report.error?.message ?? null }));
`;

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    runs: { type: 'string', default: '6' },
    load: { type: 'string', default: 'small' },
    pipelining: { type: 'boolean', default: false },
  },
});
if (!values.base) throw new Error('--base DIR: the tree to compare with (see the header)');
const trees = { base: resolve(values.base), this: ROOT };
for (const [name, root] of Object.entries(trees)) {
  await build({
    stdin: { contents: CHILD, resolveDir: root, loader: 'ts' },
    outfile: join(OUT, `${name}.mjs`),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    mainFields: ['module', 'main'],
    logLevel: 'error',
    nodePaths: [join(ROOT, 'node_modules')],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
}

const [count, size] = values.load === 'large' ? [1, 50_000_000] : [1000, 50_000];
const text = mailText(size);
const held = Array.from({ length: count }, (_, i) => ({
  from: `s${i}@origin.test`,
  to: [`u${i}@customer.test`],
  text,
  wire: stuff(text),
}));
const rates: Record<string, number[]> = { base: [], this: [] };
/** CPU time of the receiving process (its thread pool included), per message: steadier than MB/s. */
const cpus: Record<string, number[]> = { base: [], this: [] };
const kernel: Record<string, number[]> = { base: [], this: [] };
/** Each run's median time from the final dot to stored (the commit), ms. */
const commit: Record<string, number[]> = { base: [], this: [] };
const dirs: string[] = [];
try {
  for (let run = 0; run < Number(values.runs); run++) {
    for (const name of ['base', 'this'] as const) {
      const provider = await new AtrnProvider({
        queue: held,
        pipelining: values.pipelining,
      }).start();
      const dir = await mkdtemp(join(tmpdir(), 'dequeue-bench-ab-'));
      dirs.push(dir);
      try {
        const { stdout } = await promisify(execFile)(process.execPath, [
          join(OUT, `${name}.mjs`),
          JSON.stringify({ port: provider.port, dir }),
        ]);
        const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
          ms: number;
          cpuMs: number;
          sysMs: number;
          commitMs: number;
          stored: number;
          error: string | null;
        };
        if (result.error || result.stored !== count)
          throw new Error(`${name}: ${result.stored} stored, ${result.error}`);
        rates[name]!.push((count * text.length) / 1e6 / (result.ms / 1000));
        cpus[name]!.push((result.cpuMs * 1000) / count);
        kernel[name]!.push((result.sysMs * 1000) / count);
        commit[name]!.push(result.commitMs);
      } finally {
        await provider.stop();
      }
    }
  }
} finally {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}
console.log(
  `\`npx tsx bench/odmr-receive-ab.ts ${process.argv.slice(2).join(' ')}\`: ${count} x ${text.length} bytes, MB/s per run`,
);
const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
for (const [name, list] of Object.entries(rates)) {
  console.log(
    `${name === 'base' ? values.base : 'this tree'}: ${list.map((r) => r.toFixed(0)).join(' ')}; median ${median(list).toFixed(0)}; receiver CPU per message (us, median) ${median(cpus[name]!).toFixed(0)}, of which in the kernel ${median(kernel[name]!).toFixed(0)}; final dot to stored (ms, median) ${median(commit[name]!).toFixed(2)}`,
  );
}

/** As in odmr-receive.ts: headers, then 76-column base64 lines, one in 97 starting with a dot. */
function mailText(bytes: number): Buffer {
  const lines = [`Message-ID: <ab.bench@origin.test>\r\nSubject: bench\r\n\r\n`];
  for (let n = lines[0]!.length, i = 0; n < bytes - 80; i++) {
    const line = `${i % 97 === 0 ? '.' : ''}${randomBytes(57).toString('base64')}\r\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join(''), 'latin1');
}
