/**
 * RFC 2920 3.2 on the wire: the replies to a pipelined group go out together, once no input is
 * left; a provider that does not pipeline, or whose next command is only half here, gets each
 * reply as soon as it is due (a held-back reply must never wait for input that is not coming).
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { MailSink, ReversedTurn } from '../../../lambda/core/ports';
import { createMailReceiver } from '../../../lambda/core/odmr/reversed-session';
import { atrnTarget, destroySocketPairs, socketPair } from './odmr-fixtures';

afterEach(destroySocketPairs);

const memorySink: MailSink = {
  async begin() {
    return {
      write: async () => undefined,
      commit: async () => ({ id: 'm', location: 'memory', bytes: 0 }),
      abort: async () => undefined,
    };
  },
};

function turn(socket: Socket): ReversedTurn {
  return {
    socket,
    pending: Buffer.alloc(0),
    target: atrnTarget(25),
    provider: '127.0.0.1:25',
    deadline: Date.now() + 30_000,
    helloName: 'mx.customer.test',
    transcript: { line: () => undefined },
  };
}

/** What the provider receives, one entry per read, and a way to wait for a reply code. */
function reader(theirs: Socket): { reads: string[]; until: (code: string) => Promise<void> } {
  const reads: string[] = [];
  let text = '';
  let wake: (() => void) | null = null;
  theirs.on('data', (c: Buffer) => {
    reads.push(c.toString('latin1'));
    text += c.toString('latin1');
    wake?.();
  });
  const until = async (code: string): Promise<void> => {
    const seen = () => new RegExp(`(^|\\r\\n)${code} [^\\r]*\\r\\n`).test(text);
    while (!seen()) await new Promise<void>((r) => (wake = r));
    text = '';
  };
  return { reads, until };
}

describe('replies to pipelined commands', () => {
  it('go out in one write per group: 250 250 354 together, then 250 221 together', async () => {
    const { ours, theirs } = await socketPair({ noDelay: true });
    const { reads, until } = reader(theirs);
    const served = createMailReceiver(memorySink)(turn(ours));
    await until('220');
    theirs.write('EHLO provider.test\r\n');
    await until('250');
    reads.length = 0;
    theirs.write('MAIL FROM:<a@origin.test>\r\nRCPT TO:<b@customer.test>\r\nDATA\r\n');
    await until('354');
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatch(/^250 2\.1\.0 [^\r]*\r\n250 2\.1\.5 [^\r]*\r\n354 [^\r]*\r\n$/);
    reads.length = 0;
    theirs.write('Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n');
    await until('221');
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatch(/^250 2\.0\.0 [^\r]*\r\n221 [^\r]*\r\n$/);
    expect(await served).toEqual({ stored: 1, error: null });
  });

  it('are not held for a command that is only half here, nor for a provider that does not pipeline', async () => {
    const { ours, theirs } = await socketPair({ noDelay: true });
    const { until } = reader(theirs);
    const served = createMailReceiver(memorySink)(turn(ours));
    await until('220');
    theirs.write('EHLO provider.test\r\n');
    await until('250');
    // The rest of RCPT is sent only once MAIL's reply has come: it must come without it.
    theirs.write('MAIL FROM:<a@origin.test>\r\nRCPT TO:<b@cus');
    await until('250');
    theirs.write('tomer.test>\r\n');
    await until('250');
    theirs.write('DATA\r\n');
    await until('354');
    theirs.write('hi\r\n.\r\n');
    await until('250');
    theirs.write('QUIT\r\n');
    await until('221');
    expect(await served).toEqual({ stored: 1, error: null });
  });
});
