/**
 * The S3 store after the final dot: how many S3 requests the 250 waits for, one after the other.
 *
 *   npx tsx bench/s3-commit-requests.ts [--delay 25] [--messages 5] [--sink lambda/adapters/s3-mail-sink.ts]
 *
 * moto_server behind bench/latency-proxy.ts (each way --delay ms, so one request costs at least
 * one RTT); the sink (lambda/adapters/s3-mail-sink.ts, or --sink another copy of it, to compare
 * with an older version) gets each message's bytes, then `commit()` is called: that is the final
 * dot. A middleware on the S3 client notes every request's start and end; the table shows, per
 * load, the requests made after the dot, the longest chain of them that ran one after the other
 * (a request that started after another had ended follows it), and the time from the dot to the
 * commit's end in RTTs (medians over --messages messages, after one warm-up message that fills
 * the client's connection pool, as a warm Lambda has it). The bytes come 64 KB every 10 ms, as
 * from a provider's 50 Mbit/s line. Two loads: 50 KB (one PutObject) and
 * 12 MB in 5 MiB parts (a multipart upload). It asserts nothing (docs/odmr.md records a run).
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { MailEnvelope, MailSink } from '../lambda/core/ports';
import { findMotoServer, startMotoServer } from '../peers/servers/moto-server';
import { LatencyProxy } from './latency-proxy';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    delay: { type: 'string', default: '25' },
    messages: { type: 'string', default: '5' },
    sink: { type: 'string', default: 'lambda/adapters/s3-mail-sink.ts' },
  },
});
const DELAY = Number(values.delay);
const MESSAGES = Number(values.messages);
const MiB = 1024 * 1024;

interface Request {
  readonly name: string;
  readonly start: number;
  end: number;
}

function longestChain(requests: readonly Request[]): number {
  const sorted = [...requests].sort((a, b) => a.start - b.start);
  const depth: number[] = [];
  sorted.forEach((r, i) => {
    depth[i] =
      1 + Math.max(0, ...sorted.slice(0, i).map((p, j) => (p.end <= r.start ? depth[j]! : 0)));
  });
  return Math.max(0, ...depth);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (!findMotoServer()) throw new Error('moto_server is not installed');
  const { createS3MailSink } = (await import(resolve(values.sink!))) as {
    createS3MailSink: (o: {
      client: S3Client;
      bucket: string;
      partSize: number;
      queueSize: number;
    }) => MailSink;
  };
  const moto = await startMotoServer();
  const proxy = await new LatencyProxy({
    upstreamPort: Number(new URL(moto.endpoint).port),
    oneWayDelayMs: DELAY,
  }).start();
  const requests: Request[] = [];
  const client = new S3Client({
    ...moto.clientConfig,
    endpoint: `http://127.0.0.1:${proxy.port}`,
    forcePathStyle: true,
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const r: Request = {
        name: context.commandName ?? '?',
        start: performance.now(),
        end: Infinity,
      };
      requests.push(r);
      try {
        return await next(args);
      } finally {
        r.end = performance.now();
      }
    },
    { step: 'finalizeRequest', name: 'noteRequests' },
  );
  const rows: string[] = [];
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const sink = createS3MailSink({ client, bucket: 'bench', partSize: 5 * MiB, queueSize: 2 });
    for (const [name, size] of [
      ['50 KB', 50_000],
      ['12 MB (multipart, 5 MiB parts)', 12_000_000],
    ] as const) {
      const counts: number[] = [],
        chains: number[] = [],
        rtts: number[] = [];
      const names = new Map<string, number>();
      for (let i = 0; i <= MESSAGES; i++) {
        const envelope: MailEnvelope = {
          id: `m-${size}-${i}`,
          mailFrom: 'a@origin.test',
          rcptTo: ['b@customer.test'],
          receivedAt: new Date().toISOString(),
          provider: 'provider.test:366',
          target: 'bench',
          heloName: 'provider.test',
          tls: false,
          traceBytes: 0,
        };
        const draft = await sink.begin(envelope);
        const data = randomBytes(size);
        // Paced as from a provider's line (64 KB every 10 ms, about 50 Mbit/s): the upload keeps up
        // as it would in a session (the proxy's delayed line moves about 10 MB/s), rather than
        // finding parts still in flight at the dot.
        for (let at = 0; at < size; at += 64 * 1024) {
          await draft.write([data.subarray(at, at + 64 * 1024)]);
          await new Promise((r) => setTimeout(r, 10));
        }
        const dot = performance.now();
        const first = requests.length;
        await draft.commit();
        const done = performance.now();
        if (i === 0) continue; // warm-up
        const after = requests.slice(first).filter((r) => r.start >= dot);
        counts.push(after.length);
        chains.push(longestChain(after));
        rtts.push((done - dot) / (2 * DELAY));
        if (i === 1) for (const r of after) names.set(r.name, (names.get(r.name) ?? 0) + 1);
      }
      const which = [...names].map(([n, c]) => `${c} ${n.replace(/Command$/, '')}`).join(', ');
      rows.push(
        `| ${name} | ${median(counts)} | ${median(chains)} | ${median(rtts).toFixed(1)} | ${which} |`,
      );
    }
  } finally {
    client.destroy();
    await proxy.stop();
    await moto.stop();
  }
  console.log(
    `\`npx tsx bench/s3-commit-requests.ts ${process.argv.slice(2).join(' ')}\``.replace(
      / `$/,
      '`',
    ),
  );
  console.log('');
  console.log(
    `One-way delay ${DELAY} ms (RTT ${2 * DELAY} ms) in front of moto_server; sink ${values.sink}; medians of ${MESSAGES} messages.`,
  );
  console.log('');
  console.log(
    '| message | S3 requests after the dot | of them one after the other | dot to stored, RTTs | requests (first message) |',
  );
  console.log('|---|---:|---:|---:|---|');
  for (const r of rows) console.log(r);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
