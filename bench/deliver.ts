/**
 * `dequeue deliver` throughput beside Postfix's own smtp-source, into the same smtp-sink, in the
 * same run: 1,000 x 50 KB and 1 x 50 MB over one connection. dequeue's figure includes reading
 * each message from the mail directory (its envelope and its text), the run's claim on the target
 * (one O_EXCL lock file) and each message's mark (two renames into delivered/, the directories
 * fsynced once at the end), and the process start of `bin/dequeue.js` (its bundle built before
 * the first run, as any later start finds it); peak RSS is the child's (GNU time's %M).
 *
 *   npx tsx bench/deliver.ts [--runs 3] [--only small|large]
 *
 * Needs Postfix's smtp-sink and smtp-source (Debian's postfix package) and /usr/bin/time.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createMailDirSink } from '../cli/adapters/mail-dir-sink';

const ROOT = join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, only: { type: 'string' } },
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

function run(
  cmd: string,
  args: string[],
): Promise<{ ms: number; rssKiB: number; status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%M', cmd, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: ROOT,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const rssKiB = Number(stderr.trim().split('\n').pop());
      resolve({ ms, rssKiB, status, stderr });
    });
  });
}

async function sink(): Promise<{ port: number; stop: () => void }> {
  const port = await freePort();
  const child = spawn('smtp-sink', ['-u', 'nobody', `127.0.0.1:${port}`, '128'], {
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 300));
  return { port, stop: () => child.kill('SIGTERM') };
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
  bytes: number;
}
const rows: Row[] = [];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

const loads = [
  { name: '1,000 x 50 KB', count: 1000, bytes: 50 * 1024 },
  { name: '1 x 50 MB', count: 1, bytes: 50 * 1024 * 1024 },
].filter((l) => !values.only || (values.only === 'small' ? l.count > 1 : l.count === 1));

// The CLI's bundle is built on its first start after a change: not part of any run.
await run(process.execPath, [join(ROOT, 'bin', 'dequeue.js'), '--help']);

for (const load of loads) {
  const source: Row = {
    load: load.name,
    tool: 'smtp-source -d (Postfix)',
    ms: [],
    rss: [],
    bytes: load.count * load.bytes,
  };
  const ours: Row = {
    load: load.name,
    tool: 'dequeue deliver --mail-dir',
    ms: [],
    rss: [],
    bytes: load.count * load.bytes,
  };
  for (let r = 0; r < RUNS; r++) {
    const s = await sink();
    try {
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
      const dir = await mailDir(load.count, load.bytes);
      try {
        const b = await run(process.execPath, [
          join(ROOT, 'bin', 'dequeue.js'),
          'deliver',
          '--mail-dir',
          dir,
          '--to',
          `smtp://127.0.0.1:${s.port}`,
        ]);
        if (b.status !== 0) throw new Error(`dequeue deliver failed: ${b.stderr}`);
        ours.ms.push(b.ms);
        ours.rss.push(b.rssKiB);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } finally {
      s.stop();
    }
  }
  rows.push(source, ours);
}

console.log(
  `\n\`npx tsx bench/deliver.ts --runs ${RUNS}\` (${new Date().toISOString()}, node ${process.version})\n`,
);
console.log('| load | sender | MB/s (median) | x smtp-source | median ms | peak RSS MiB | runs |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const row of rows) {
  const base = rows.find((r) => r.load === row.load && r.tool.startsWith('smtp-source'))!;
  const mbs = row.bytes / 1e6 / (median(row.ms) / 1000);
  const baseMbs = base.bytes / 1e6 / (median(base.ms) / 1000);
  console.log(
    `| ${row.load} | ${row.tool} | ${mbs.toFixed(1)} | ${(mbs / baseMbs).toFixed(2)} | ${median(row.ms).toFixed(0)} | ${(Math.max(...row.rss) / 1024).toFixed(0)} | ${row.ms.length} |`,
  );
}
