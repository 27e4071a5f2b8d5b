/**
 * One ATRN pull on loopback for the reversed-session tests: the signal session authenticates and
 * sends ATRN to the in-process provider, which turns the connection around and delivers its queue
 * into a mail directory (or the sink given). `cleanups` is for the caller's afterEach.
 */
import { expect } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { MailSink } from '../../../lambda/core/ports';
import type { ReceiverOptions } from '../../../lambda/core/odmr/receiver-limits';
import { createMailReceiver } from '../../../lambda/core/odmr/reversed-session';
import { releaseSignal, type SignalReport } from '../../../lambda/core/signal/session';
import { AtrnProvider, type AtrnProviderOptions } from '../../../peers/atrn-provider';
import { testCa } from '../../../peers/scripted-provider';
import {
  atrnTarget,
  credentials,
  heldMessage,
  providerBytes,
  readMailDir,
  tempDir,
} from './odmr-fixtures';

export const cleanups: (() => Promise<void>)[] = [];

/** For afterEach: what the runs started, stopped and removed in reverse order. */
export async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}

export interface Run {
  readonly provider: AtrnProvider;
  readonly report: SignalReport;
  readonly dir: string;
  readonly transcript: string[];
}

export async function pull(
  providerOptions: AtrnProviderOptions,
  options: {
    receiver?: ReceiverOptions;
    sink?: (dir: string) => MailSink;
    deadlineMs?: number;
    dir?: string;
    target?: Record<string, unknown>;
    stop?: AbortSignal;
  } = {},
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
    atrnTarget(provider.port, options.target),
    {
      deadline: options.deadlineMs === undefined ? undefined : Date.now() + options.deadlineMs,
      stop: options.stop,
    },
    {
      credentials,
      helloName: 'mx.customer.test',
      tlsCa: testCa,
      receiver: createMailReceiver(sink, options.receiver),
      transcript: { line: (_t, d, text) => transcript.push(`${d} ${text}`) },
    },
  );
  await provider.idle();
  return { provider, report, dir, transcript };
}

export const queueOf = (n: number, bytes?: number) =>
  Array.from({ length: n }, (_, i) => heldMessage(i, bytes));

/** The core promise: what the provider saw acknowledged is stored, byte-exact, and nothing else is. */
export async function expectStoredExactlyAcknowledged(run: Run, queue = queueOf(0)): Promise<void> {
  const { stored, others } = await readMailDir(run.dir);
  expect(others, 'no partial or temporary file is visible').toEqual([]);
  const acknowledged = run.provider.acknowledged;
  expect(stored).toHaveLength(acknowledged.length);
  for (const [i, ack] of acknowledged.entries()) {
    const file = stored[i]!;
    expect(
      providerBytes(file).equals(queue[ack.number]!.text),
      `message ${ack.number} is byte-exact`,
    ).toBe(true);
    expect(file.envelope.rcptTo).toEqual(ack.recipients);
    expect(file.envelope.mailFrom).toBe(queue[ack.number]!.from);
    expect(ack.reply).toContain(file.id);
  }
}
