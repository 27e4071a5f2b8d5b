/**
 * The reversed session's own edges, on a bare socket pair (no signal session): bytes handed over
 * with the turn, the deadline's extremes, the inbox cap, and the one-timer DeadlineTimer.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DeadlineTimer } from '../../../lambda/core/deadline-timer';
import { DequeueError, TimeoutError } from '../../../lambda/core/errors';
import type { MailEnvelope, MailSink, ReversedTurn } from '../../../lambda/core/ports';
import { INBOX_HIGH_WATER, ProviderStream } from '../../../lambda/core/odmr/provider-stream';
import { createMailReceiver } from '../../../lambda/core/odmr/reversed-session';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import { mailReceiverFor } from '../../../lambda/mail-receiver';
import { atrnTarget, destroySocketPairs, readMailDir, socketPair, tempDir } from './odmr-fixtures';

afterEach(destroySocketPairs);

const memorySink = (): MailSink & { messages: Buffer[]; envelopes: MailEnvelope[] } => {
  const messages: Buffer[] = [];
  const envelopes: MailEnvelope[] = [];
  return {
    messages,
    envelopes,
    async begin(envelope) {
      envelopes.push(envelope);
      const parts: Buffer[] = [];
      return {
        write: async (chunks) => void parts.push(...chunks),
        commit: async () => {
          messages.push(Buffer.concat(parts));
          return { id: 'm', location: 'memory', bytes: 0 };
        },
        abort: async () => undefined,
      };
    },
  };
};

function turn(
  socket: Socket,
  pending: string,
  deadline: number,
  lines: string[] = [],
): ReversedTurn {
  return {
    socket,
    pending: Buffer.from(pending),
    target: atrnTarget(25, { mail: { domains: ['d.test'] } }),
    provider: '127.0.0.1:25',
    deadline,
    helloName: 'mx.customer.test',
    transcript: { line: (_t, d, text) => lines.push(`${d} ${text}`) },
  };
}

describe('the turn itself', () => {
  it('serves bytes that arrived with the ATRN reply (pending) before any from the socket, with no deadline at all', async () => {
    const { ours, theirs } = await socketPair();
    const sink = memorySink();
    const replies: string[] = [];
    theirs.on('data', (c: Buffer) => replies.push(...c.toString().split('\r\n').filter(Boolean)));
    const served = createMailReceiver(sink)(
      turn(ours, 'EHLO early.test\r\nMAIL FROM:<a@b.test>\r\n', Number.POSITIVE_INFINITY),
    );
    theirs.write('RCPT TO:<c@d.test>\r\nDATA\r\n');
    await new Promise((r) => setTimeout(r, 50));
    theirs.write('Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n');
    const outcome = await served;
    expect(outcome).toEqual({ stored: 1, error: null });
    expect(replies[0]).toMatch(/^220 /);
    expect(replies.filter((r) => /^\d{3} /.test(r)).map((r) => r.slice(0, 3))).toEqual([
      '220',
      '250',
      '250',
      '250',
      '354',
      '250',
      '221',
    ]);
    expect(sink.messages[0]!.toString()).toMatch(/\r\nSubject: x\r\n\r\nhi\r\n$/);
  });

  it('greets with 421 when the deadline is already too close, and stores nothing', async () => {
    const { ours, theirs } = await socketPair();
    const got = new Promise<string>((r) => theirs.once('data', (c: Buffer) => r(c.toString())));
    const outcome = await createMailReceiver(memorySink())(turn(ours, '', Date.now() + 500));
    expect(await got).toMatch(/^421 4\.3\.2 /);
    expect(outcome.stored).toBe(0);
    expect(outcome.error?.kind).toBe('temporary');
  });
});

/** A whole session from what the provider sends at once after our greeting; its final replies. */
async function session(
  input: string,
): Promise<{ replies: string[]; sink: ReturnType<typeof memorySink> }> {
  const { ours, theirs } = await socketPair();
  const sink = memorySink();
  let text = '';
  theirs.on('data', (c: Buffer) => (text += c.toString('latin1')));
  const served = createMailReceiver(sink)(turn(ours, '', Number.POSITIVE_INFINITY));
  theirs.write(input);
  await served;
  return { replies: text.split('\r\n').filter((l) => /^\d{3} /.test(l)), sink };
}

describe('what a provider may say', () => {
  it.each(['8BitMIME', '8bitmime', '7Bit'])(
    'MAIL FROM with BODY=%s is accepted (the value is case-insensitive, RFC 6152)',
    async (value) => {
      const { replies, sink } = await session(
        `EHLO p.test\r\nMAIL FROM:<a@b.test> BODY=${value}\r\nRCPT TO:<c@d.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n`,
      );
      expect(replies.map((r) => r.slice(0, 3))).toEqual([
        '220',
        '250',
        '250',
        '250',
        '354',
        '250',
        '221',
      ]);
      expect(sink.envelopes[0]?.body).toBe(value.toUpperCase());
    },
  );
});

describe('a reply that can never leave', () => {
  /** `inner`, with a commit that finishes only after the provider has reset the connection. */
  function resetDuringCommit(
    inner: MailSink,
    ours: Socket,
    theirs: Socket,
    withdrawable: boolean,
  ): MailSink {
    const closed = new Promise((r) => ours.once('close', r));
    return {
      async begin(envelope) {
        const draft = await inner.begin(envelope);
        return {
          ...(withdrawable ? { withdrawable: true } : {}),
          write: (chunks) => draft.write(chunks),
          commit: async () => {
            const stored = await draft.commit();
            theirs.resetAndDestroy();
            await closed;
            return stored;
          },
          abort: () => draft.abort(),
        };
      },
    };
  }
  const message =
    'EHLO p.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n';

  it('the provider resets the connection before our 250 to the final dot: the message is withdrawn from the mail directory, not counted (no duplicate)', async () => {
    const { ours, theirs } = await socketPair();
    const tmp = await tempDir('dequeue-gone-');
    try {
      const sink = resetDuringCommit(createMailDirSink(tmp.path), ours, theirs, true);
      const served = createMailReceiver(sink)(turn(ours, '', Number.POSITIVE_INFINITY));
      theirs.on('error', () => undefined);
      theirs.write(message);
      const outcome = await served;
      expect(outcome.stored).toBe(0);
      expect(outcome.error?.message).toMatch(
        /closed before our reply to message \S+ could be sent: withdrawn from the store, the provider keeps it/,
      );
      expect(await readMailDir(tmp.path)).toEqual({ stored: [], others: [] });
    } finally {
      await tmp.remove();
    }
  });

  it('as the CLI and the function assemble it (mailReceiverFor), the message is still withdrawn', async () => {
    const { ours, theirs } = await socketPair();
    const tmp = await tempDir('dequeue-gone-');
    try {
      const store = resetDuringCommit(createMailDirSink(tmp.path), ours, theirs, true);
      const served = mailReceiverFor(store, { everyNthCycle: 0, concurrency: 1 })!(
        turn(ours, '', Number.POSITIVE_INFINITY),
      );
      theirs.on('error', () => undefined);
      theirs.write(message);
      const outcome = await served;
      expect(outcome.stored).toBe(0);
      expect(outcome.error?.message).toMatch(/withdrawn from the store, the provider keeps it/);
      expect(await readMailDir(tmp.path)).toEqual({ stored: [], others: [] });
    } finally {
      await tmp.remove();
    }
  });

  it('a sink that cannot take a message back (a relay): not counted, and the result says a duplicate will come', async () => {
    const { ours, theirs } = await socketPair();
    const inner = memorySink();
    const served = createMailReceiver(resetDuringCommit(inner, ours, theirs, false))(
      turn(ours, '', Number.POSITIVE_INFINITY),
    );
    theirs.on('error', () => undefined);
    theirs.write(message);
    const outcome = await served;
    expect(outcome.stored).toBe(0);
    expect(outcome.error?.message).toMatch(
      /went to memory but the connection closed before our 250: not counted, and the provider will send it again \(a duplicate\)/,
    );
  });
});

describe('what could not be cleaned up', () => {
  it('an aborted message the sink could not remove is named in the result, not only in the transcript', async () => {
    const { ours, theirs } = await socketPair();
    const sink: MailSink = {
      async begin() {
        return {
          write: async () => undefined,
          commit: async () => ({ id: 'x', location: 'nowhere', bytes: 0 }),
          abort: async () => {
            throw new DequeueError(
              'temporary',
              'could not be withdrawn: s3://b/k.eml (AccessDenied)',
            );
          },
        };
      },
    };
    const served = createMailReceiver(sink)(turn(ours, '', Number.POSITIVE_INFINITY));
    theirs.write(
      'EHLO p.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: x\r\n\r\npartial',
    );
    await new Promise((r) => setTimeout(r, 50));
    theirs.end();
    const outcome = await served;
    expect(outcome.stored).toBe(0);
    expect(outcome.error?.message).toMatch(
      /in the middle of message .*; also: could not be withdrawn: s3:\/\/b\/k\.eml \(AccessDenied\)/,
    );
  });
});

describe('ProviderStream', () => {
  it('stops reading the socket once INBOX_HIGH_WATER bytes wait untaken (memory stays bounded)', async () => {
    const { ours, theirs } = await socketPair();
    const stream = new ProviderStream(ours, Buffer.alloc(0), 2048, new DeadlineTimer());
    const flood = Buffer.alloc(64 * 1024 * 1024, 'x');
    theirs.write(flood);
    await new Promise((r) => setTimeout(r, 300));
    expect(stream.bufferedBytes).toBeGreaterThanOrEqual(INBOX_HIGH_WATER);
    expect(stream.bufferedBytes).toBeLessThan(INBOX_HIGH_WATER + 1024 * 1024);
    expect(ours.isPaused()).toBe(true);
    // Taking from it lets the provider go on.
    let taken = 0;
    while (taken < 8 * 1024 * 1024) taken += (await stream.readChunk(Date.now() + 5000))!.length;
    expect(stream.bufferedBytes).toBeLessThan(INBOX_HIGH_WATER + 1024 * 1024);
  });
});

describe('DeadlineTimer', () => {
  it('rejects only the waits whose bound passed, on one timer', async () => {
    const timer = new DeadlineTimer();
    const never = new Promise<never>(() => undefined);
    const soon = timer.within(never, Date.now() + 50);
    const later = timer.within(
      new Promise((r) => setTimeout(() => r('done'), 120)),
      Date.now() + 10_000,
    );
    await expect(soon).rejects.toBeInstanceOf(TimeoutError);
    await expect(later).resolves.toBe('done');
    timer.stop();
  });
});
