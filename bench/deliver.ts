/**
 * `dequeue deliver` beside Postfix flushing the same load from its own queue, into the same
 * smtp-sink, in the same run: 1,000 x 50 KB and 1 x 50 MB. The anchor is what people would run
 * instead: a private Postfix (bench/postfix-peer.ts) holding the same messages (handed to it by
 * `dequeue deliver`, so byte for byte the same, plus its Received: line), released with
 * `postqueue -f` through a transport to the sink, timed from the flush to the sink's count of the
 * last message accepted; Postfix opens as many connections as its destination concurrency allows
 * (up to 20 by default) and marks nothing before the sink's 250 is counted. dequeue uses its
 * default connections (two, polite to a small server: cli/delivery/run-connection.ts) unless
 * `--connections` says otherwise; its row says which. Beside it, Postfix's
 * smtp-source (`-d`, one connection, messages made in memory): a load generator, for reference.
 *
 * dequeue's figure includes the process start of `bin/dequeue.js` (its bundle built before the
 * first run, as any later start finds it), the run's claim on the target (one O_EXCL lock file),
 * reading each message (its envelope and its text) and each message's mark (two renames into
 * delivered/, the directories fsynced once at the end): to its exit. Peak RSS and CPU are GNU
 * time's for a process; Postfix's CPU is its processes' sum (bench/postfix-peer.ts).
 *
 *   npx tsx bench/deliver.ts [--runs 3] [--only small|large] [--connections N]
 *
 * Needs Postfix (Debian's package: smtp-sink, smtp-source, a private instance, run as root) and
 * /usr/bin/time. The load average when it started and ended is printed with the table.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createMailDirSink } from '../cli/adapters/mail-dir-sink';
import { DEFAULT_CONNECTIONS } from '../cli/delivery/run-connection';
import { flush, instanceCpu, postfixMissing, startBenchPostfix } from './postfix-peer';

const ROOT = join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    connections: { type: 'string' },
  },
});
const RUNS = Number(values.runs);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/** Run a command under GNU time: wall time, its peak RSS (%M, KiB) and its CPU time (%U + %S). */
function run(
  cmd: string,
  args: string[],
): Promise<{ ms: number; rssKiB: number; cpuMs: number; status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: ROOT,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const [rss, user, system] = stderr.trim().split('\n').pop()!.split(' ').map(Number);
      resolve({ ms, rssKiB: rss!, cpuMs: (user! + system!) * 1000, status, stderr });
    });
  });
}

/** Postfix's smtp-sink on a free port, counting the messages it has accepted (`-c`). */
async function sink(): Promise<{
  port: number;
  /** Resolves once the sink has taken `count` messages in all (since it started). */
  accepted(count: number): Promise<void>;
  readonly messages: number;
  stop: () => void;
}> {
  const port = await freePort();
  const child = spawn('smtp-sink', ['-c', '-u', 'nobody', `127.0.0.1:${port}`, '128'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let messages = 0;
  const waiting: { count: number; resolve: () => void }[] = [];
  let tail = '';
  child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
    // One "sess=N quit=N mesg=N" per event, each ended by CR.
    tail += chunk;
    const last = tail.lastIndexOf('mesg=');
    if (last !== -1) {
      const m = /^mesg=(\d+)/.exec(tail.slice(last));
      if (m && tail.indexOf('\r', last) !== -1) messages = Number(m[1]);
    }
    tail = tail.slice(-64);
    for (const w of [...waiting]) {
      if (messages >= w.count) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  return {
    port,
    get messages() {
      return messages;
    },
    accepted: (count) =>
      messages >= count
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiting.push({ count, resolve })),
    stop: () => child.kill('SIGTERM'),
  };
}

/** A mail directory holding `count` messages of `bytes`, written through the real sink. */
async function mailDir(count: number, bytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dequeue-bench-deliver-'));
  const store = createMailDirSink(dir);
  const line = `${'x'.repeat(76)}\r\n`;
  const body = Buffer.from(
    `Subject: bench\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}`.slice(0, bytes - 2) +
      '\r\n',
  );
  const start = Date.parse('2026-12-01T00:00:00Z');
  for (let i = 0; i < count; i++) {
    const id = `${new Date(start + i).toISOString().replace(/[-:.]/g, '')}-${i.toString(16).padStart(12, '0')}`;
    const draft = await store.begin({
      id,
      mailFrom: 'bench@origin.test',
      rcptTo: ['user@customer.test'],
      receivedAt: new Date().toISOString(),
      provider: 'p:366',
      target: 'bench',
      heloName: 'p',
      tls: false,
      traceBytes: 0,
      // What the session stores since issue 17: deliver sends only to the customer's domains.
      domains: ['customer.test'],
    });
    await draft.write([body]);
    await draft.commit();
  }
  return dir;
}

interface Row {
  load: string;
  tool: string;
  ms: number[];
  rss: number[];
  cpuMs: number[];
  bytes: number;
  count: number;
}
const rows: Row[] = [];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

const loads = [
  { name: '1,000 x 50 KB', count: 1000, bytes: 50 * 1024 },
  { name: '1 x 50 MB', count: 1, bytes: 50 * 1024 * 1024 },
].filter((l) => !values.only || (values.only === 'small' ? l.count > 1 : l.count === 1));

const dequeue = join(ROOT, 'bin', 'dequeue.js');
const connections = values.connections ? ['--connections', values.connections] : [];
// The CLI's bundle is built on its first start after a change: not part of any run.
await run(process.execPath, [dequeue, '--help']);
if (postfixMissing) throw new Error(`the Postfix rows need a private Postfix: ${postfixMissing}`);
const loadBefore = loadavg();

for (const load of loads) {
  const row = (tool: string): Row => ({
    load: load.name,
    tool,
    ms: [],
    rss: [],
    cpuMs: [],
    bytes: load.count * load.bytes,
    count: load.count,
  });
  const flushed = row('Postfix 3 `postqueue -f` from its queue');
  // The connections it used are in the row: the default unless --connections was given.
  const ours = row(
    `dequeue deliver --mail-dir, ${values.connections ?? `${DEFAULT_CONNECTIONS} (default)`} connections`,
  );
  const source = row('smtp-source -d (a load generator, one connection)');
  const s = await sink();
  const postfix = await startBenchPostfix(s.port);
  try {
    for (let r = 0; r < RUNS; r++) {
      // Postfix, holding the same messages: handed to it, then released to the sink.
      const held = await mailDir(load.count, load.bytes);
      try {
        const fill = await run(process.execPath, [
          dequeue,
          'deliver',
          '--mail-dir',
          held,
          '--to',
          `smtp://127.0.0.1:${postfix.port}`,
        ]);
        if (fill.status !== 0) throw new Error(`filling Postfix's queue failed: ${fill.stderr}`);
        await postfix.waitForDeferred(() => true, load.count);
      } finally {
        await rm(held, { recursive: true, force: true });
      }
      const before = instanceCpu(postfix);
      const target = s.messages + load.count;
      const started = performance.now();
      await flush(postfix);
      await s.accepted(target);
      flushed.ms.push(performance.now() - started);
      flushed.cpuMs.push(instanceCpu(postfix, before.sample).ms);
      flushed.rss.push(Number.NaN);

      const dir = await mailDir(load.count, load.bytes);
      try {
        const b = await run(process.execPath, [
          dequeue,
          'deliver',
          '--mail-dir',
          dir,
          '--to',
          `smtp://127.0.0.1:${s.port}`,
          ...connections,
        ]);
        if (b.status !== 0) throw new Error(`dequeue deliver failed: ${b.stderr}`);
        ours.ms.push(b.ms);
        ours.rss.push(b.rssKiB);
        ours.cpuMs.push(b.cpuMs);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }

      const a = await run('smtp-source', [
        '-d',
        '-s',
        '1',
        '-m',
        String(load.count),
        '-l',
        String(load.bytes),
        '-f',
        'bench@origin.test',
        '-t',
        'user@customer.test',
        `127.0.0.1:${s.port}`,
      ]);
      if (a.status !== 0) throw new Error(`smtp-source failed: ${a.stderr}`);
      source.ms.push(a.ms);
      source.rss.push(a.rssKiB);
      source.cpuMs.push(a.cpuMs);
    }
  } finally {
    await postfix.stop();
    s.stop();
  }
  rows.push(flushed, ours, source);
}

const loadAfter = loadavg();
const command = ['npx tsx bench/deliver.ts', ...process.argv.slice(2)].join(' ');
console.log(
  `\n\`${command}\` (${new Date().toISOString()}, node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, load average ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(1)).join(' ')} after)\n`,
);
console.log(
  '| load | sender | MB/s (median) | x Postfix flush | median ms | ms, each run | CPU ms (median) | peak RSS MiB | runs |',
);
console.log('|---|---|---:|---:|---:|---|---:|---:|---:|');
const verdicts: string[] = [];
for (const row of rows) {
  const base = rows.find((r) => r.load === row.load && r.tool.startsWith('Postfix'))!;
  const mbs = row.bytes / 1e6 / (median(row.ms) / 1000);
  const baseMbs = base.bytes / 1e6 / (median(base.ms) / 1000);
  console.log(
    `| ${row.load} | ${row.tool} | ${mbs.toFixed(1)} | ${(mbs / baseMbs).toFixed(2)} | ${median(row.ms).toFixed(0)} | ${row.ms.map((ms) => ms.toFixed(0)).join(' ')} | ${median(row.cpuMs).toFixed(0)} | ${row.rss.some(Number.isNaN) ? '-' : (Math.max(...row.rss) / 1024).toFixed(0)} | ${row.ms.length} |`,
  );
  if (row.tool.startsWith('dequeue'))
    verdicts.push(
      `- ${row.load}: dequeue deliver ${(mbs / baseMbs).toFixed(2)}x Postfix's flush (goal 1.0x: ${mbs >= baseMbs ? 'met' : 'NOT met'})`,
    );
}
console.log('');
for (const line of verdicts) console.log(line);
