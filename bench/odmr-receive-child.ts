/**
 * The receiving side of bench/odmr-receive.ts, run in a child process of its own as an esbuild
 * bundle (`node odmr-receive-child.mjs --child SPEC`): it imports only what its case needs, so
 * that its peak RSS is the receiver's alone, and prints one JSON line, its result.
 */
import {
  closeSync,
  fdatasync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

export type Sink = 'raw' | 'raw-files' | 'null' | 'sync-file' | 'sync-pair' | 'dir' | 's3';
export interface ChildSpec {
  readonly sink: Sink;
  readonly port: number;
  readonly messages: number;
  readonly bytes: number;
  readonly dir?: string;
  readonly s3?: { endpoint: string; bucket: string };
  /** raw-files: the wire length of each message, in order. */
  readonly pieces?: readonly number[];
}
export interface ChildResult {
  readonly ms: number;
  readonly bytes: number;
  readonly stored: number;
  readonly startRssMiB: number;
  /** CPU time of the receiving process over the same span (its thread pool included), ms. */
  readonly cpuMs: number;
  readonly peakRssMiB: number;
  readonly error: string | null;
}

/** The receiving side: imports only what the case needs, so its RSS is the receiver's. */
export async function child(spec: ChildSpec): Promise<ChildResult> {
  const startRssMiB = process.memoryUsage().rss / 2 ** 20;
  let cpuAtStart = process.cpuUsage();
  const cpuMs = () => {
    const used = process.cpuUsage(cpuAtStart);
    return (used.user + used.system) / 1000;
  };
  const peak = () => peakRssMiB();
  if (spec.sink === 'raw') {
    const started = performance.now();
    const bytes = await new Promise<number>((resolve, reject) => {
      let n = 0;
      const socket = connect(spec.port, '127.0.0.1');
      socket.on('data', (chunk: Buffer) => (n += chunk.length));
      socket.on('end', () => resolve(n));
      socket.on('error', reject);
    });
    return {
      ms: performance.now() - started,
      bytes,
      stored: spec.messages,
      startRssMiB,
      peakRssMiB: peak(),
      cpuMs: cpuMs(),
      error: null,
    };
  }
  if (spec.sink === 'raw-files') {
    // The same raw copy, but each message made durable as the mail directory does it: its own
    // file, fsync, rename, directory fsync, and a background fdatasync every 8 MiB on the way
    // (as the sink does, so that the final fsync has little left to write). No SMTP, no second
    // (envelope) file, no thread pool: every call but those fdatasyncs blocks this one thread.
    const started = performance.now();
    const bytes = await new Promise<number>((resolve, reject) => {
      let n = 0;
      let inPiece = 0;
      let unsynced = 0;
      let index = 0;
      let fd = -1;
      /** Files with an fdatasync in flight, closed when it returns. */
      const syncing = new Set<number>();
      const closeLater = new Set<number>();
      const dirFd = openSync(spec.dir!, 'r');
      const socket = connect(spec.port, '127.0.0.1');
      socket.on('data', (chunk: Buffer) => {
        n += chunk.length;
        let at = 0;
        while (at < chunk.length) {
          if (fd < 0) fd = openSync(join(spec.dir!, `.${index}.part`), 'wx', 0o600);
          const take = Math.min(chunk.length - at, spec.pieces![index]! - inPiece);
          writeSync(fd, chunk, at, take);
          at += take;
          inPiece += take;
          unsynced += take;
          if (unsynced >= 8 * 1024 * 1024 && !syncing.has(fd)) {
            const file = fd;
            syncing.add(file);
            unsynced = 0;
            fdatasync(file, (e) => {
              syncing.delete(file);
              if (closeLater.delete(file)) closeSync(file);
              if (e) socket.destroy(e);
            });
          }
          if (inPiece === spec.pieces![index]) {
            fsyncSync(fd);
            if (syncing.has(fd)) closeLater.add(fd);
            else closeSync(fd);
            renameSync(join(spec.dir!, `.${index}.part`), join(spec.dir!, `${index}.eml`));
            fsyncSync(dirFd);
            fd = -1;
            inPiece = 0;
            unsynced = 0;
            index++;
          }
        }
      });
      socket.on('end', () => resolve(n));
      socket.on('error', reject);
    });
    return {
      ms: performance.now() - started,
      bytes,
      stored: spec.messages,
      startRssMiB,
      peakRssMiB: peak(),
      cpuMs: cpuMs(),
      error: null,
    };
  }
  const { parseTarget } = await import('../lambda/core/config');
  const { createMailReceiver } = await import('../lambda/core/odmr/reversed-session');
  const { releaseSignal } = await import('../lambda/core/signal/session');
  let sink;
  if (spec.sink === 'null') {
    // The SMTP dialogue alone: every message taken and dropped, acknowledged at once.
    const done = Promise.resolve();
    sink = {
      begin: async (envelope: { id: string }) => ({
        withdrawable: true,
        write: () => done,
        abort: () => done,
        commit: async () => ({ id: envelope.id, location: 'nowhere', bytes: 0 }),
      }),
    };
  } else if (spec.sink === 'sync-file' || spec.sink === 'sync-pair') {
    // The SMTP dialogue, and each message made durable as raw-files does it (its own file,
    // fsync, rename, directory fsync; synchronous calls on this thread, no envelope): an upper
    // bound for any store behind SMTP with that promise, not a design (it blocks the event loop).
    // sync-pair: the same with the envelope's file too (written, fsynced and renamed first).
    const pair = spec.sink === 'sync-pair';
    const dirFd = openSync(spec.dir!, 'r');
    let n = 0;
    sink = {
      begin: async (envelope: { id: string }) => {
        const chunks: Buffer[] = [];
        const done = Promise.resolve();
        return {
          withdrawable: true,
          abort: () => done,
          write: (pieces: readonly Buffer[]) => {
            chunks.push(...pieces);
            return done;
          },
          commit: async () => {
            const part = join(spec.dir!, `.${n}.part`);
            if (pair) {
              const json = join(spec.dir!, `.${n}.json.part`);
              const jfd = openSync(json, 'wx', 0o600);
              writeSync(jfd, JSON.stringify({ id: envelope.id, n }));
              fsyncSync(jfd);
              closeSync(jfd);
              renameSync(json, join(spec.dir!, `${n}.json`));
            }
            const fd = openSync(part, 'wx', 0o600);
            writevSync(fd, chunks);
            fsyncSync(fd);
            closeSync(fd);
            renameSync(part, join(spec.dir!, `${n++}.eml`));
            fsyncSync(dirFd);
            return { id: envelope.id, location: part, bytes: 0 };
          },
        };
      },
    };
  } else if (spec.sink === 'dir') {
    const { createMailDirSink } = await import('../cli/adapters/mail-dir-sink');
    sink = createMailDirSink(spec.dir!);
  } else {
    const { createS3MailSink } = await import('../lambda/adapters/s3-mail-sink');
    const { S3Client } = await import('@aws-sdk/client-s3');
    const client = new S3Client({
      endpoint: spec.s3!.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    });
    sink = createS3MailSink({ client, bucket: spec.s3!.bucket });
  }
  const target = parseTarget(
    {
      name: 'bench',
      host: '127.0.0.1',
      port: spec.port,
      tls: 'none',
      auth: { secretId: 'odmr' },
      command: 'ATRN',
      mail: { domains: ['customer.test'] },
      timeoutSeconds: 60,
    },
    'bench',
  );
  const credentials = { get: async () => ({ username: 'customer', password: 'odmr-secret' }) };
  cpuAtStart = process.cpuUsage();
  const started = performance.now();
  const report = await releaseSignal(
    target,
    {},
    { credentials, helloName: 'mx.bench.test', receiver: createMailReceiver(sink) },
  );
  const ms = performance.now() - started;
  return {
    ms,
    bytes: spec.bytes,
    stored: report.messages,
    startRssMiB,
    peakRssMiB: peak(),
    cpuMs: cpuMs(),
    error: report.error?.message ?? null,
  };
}

/**
 * The peak RSS of this process: VmHWM from /proc (Linux). Not resourceUsage().maxRSS: Linux keeps
 * ru_maxrss across fork and exec, so a child would report its parent's peak when that is larger.
 */
function peakRssMiB(): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

if (process.argv[2] === '--child') {
  void child(JSON.parse(process.argv[3]!) as ChildSpec).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
