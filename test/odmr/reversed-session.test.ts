/**
 * The reversed session end to end on loopback: the signal session authenticates and sends ATRN
 * to the in-process provider, which turns the connection around and delivers its queue into the
 * mail directory. Every test checks what a user would: what the directory shows, what the
 * provider saw acknowledged, and what it still holds.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../lambda/adapters/mail-dir-sink';
import type { MailSink, ReversedOutcome } from '../../lambda/core/ports';
import { createMailReceiver, type ReceiverOptions } from '../../lambda/core/reversed-session';
import { releaseSignal, type SignalReport } from '../../lambda/core/signal-session';
import { AtrnProvider, type AtrnProviderOptions } from '../peers/atrn-provider';
import { atrnTarget, credentials, heldMessage, providerBytes, readMailDir, tempDir } from './odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Run {
  readonly provider: AtrnProvider;
  readonly report: SignalReport;
  readonly dir: string;
  readonly transcript: string[];
}

async function pull(
  providerOptions: AtrnProviderOptions,
  options: { receiver?: ReceiverOptions; sink?: (dir: string) => MailSink; deadlineMs?: number; dir?: string } = {},
): Promise<Run> {
  const provider = await new AtrnProvider(providerOptions).start();
  cleanups.push(() => provider.stop());
  let dir = options.dir;
  if (!dir) {
    const tmp = await tempDir('dequeue-odmr-');
    cleanups.push(tmp.remove);
    dir = tmp.path;
  }
  const sink = options.sink ? options.sink(dir) : createMailDirSink(dir);
  const transcript: string[] = [];
  const report = await releaseSignal(
    atrnTarget(provider.port),
    { deadline: options.deadlineMs === undefined ? undefined : Date.now() + options.deadlineMs },
    {
      credentials,
      helloName: 'mx.customer.test',
      receiver: createMailReceiver(sink, options.receiver),
      transcript: { line: (_t, d, text) => transcript.push(`${d} ${text}`) },
    },
  );
  await provider.idle();
  return { provider, report, dir, transcript };
}

const queueOf = (n: number, bytes?: number) => Array.from({ length: n }, (_, i) => heldMessage(i, bytes));

/** The core promise: what the provider saw acknowledged is stored, byte-exact, and nothing else is. */
async function expectStoredExactlyAcknowledged(run: Run, queue = queueOf(0)): Promise<void> {
  const { stored, others } = await readMailDir(run.dir);
  expect(others, 'no partial or temporary file is visible').toEqual([]);
  const acknowledged = run.provider.acknowledged;
  expect(stored).toHaveLength(acknowledged.length);
  for (const [i, ack] of acknowledged.entries()) {
    const file = stored[i]!;
    expect(providerBytes(file).equals(queue[ack.number]!.text), `message ${ack.number} is byte-exact`).toBe(true);
    expect(file.envelope.rcptTo).toEqual(ack.recipients);
    expect(file.envelope.mailFrom).toBe(queue[ack.number]!.from);
    expect(ack.reply).toContain(file.id);
  }
}

describe('ODMR: pulling the held mail after ATRN', () => {
  it('stores every message of the queue with its envelope, and the provider is left empty', async () => {
    const queue = queueOf(5);
    const run = await pull({ queue });
    expect(run.report.outcome).toBe('signalled');
    expect(run.report.messages).toBe(5);
    expect(run.report.error).toBeNull();
    expect(run.provider.waiting).toEqual([]);
    await expectStoredExactlyAcknowledged(run, queue);
    const { stored } = await readMailDir(run.dir);
    const envelope = stored[0]!.envelope;
    expect(envelope).toMatchObject({
      mailFrom: 'sender0@origin.test', rcptTo: ['user0@customer.test', 'other0@customer.test'],
      provider: `127.0.0.1:${run.provider.port}`, target: 'odmr-test', heloName: 'provider.test', tls: false,
    });
    expect(stored[0]!.message.toString('latin1')).toMatch(/^Received: from provider\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.customer\.test \(dequeue ODMR\) with ESMTP id /);
    expect(run.transcript).toContain('S 250 2.0.0 Ok: stored as ' + stored[0]!.id);
  });
});
