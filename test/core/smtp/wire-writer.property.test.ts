/**
 * Issue 17 item 3, defence in depth: whatever envelope reaches the SMTP client, the wire writer
 * (ReplyChannel) never emits a command line with an embedded CR or LF (RFC 5321 2.3.8: it would
 * end the command and start one of the attacker's). A line that holds one is refused whole with a
 * permanent DequeueError that has a cause, and nothing of it (nor of its pipelined group) is
 * written.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { envelopeLines, type Outgoing } from '../../../cli/delivery/transaction';
import { DequeueError } from '../../../lambda/core/errors';
import { ReplyChannel } from '../../../lambda/core/smtp/reply-channel';
import { checkProperty } from '../../support/fuzz';

/** A socket that only records what is written. */
function recordingSocket(): { socket: Socket; written: string[] } {
  const written: string[] = [];
  const socket = Object.assign(new EventEmitter(), {
    write: (data: string | Buffer) => {
      written.push(data.toString());
      return true;
    },
  });
  return { socket: socket as unknown as Socket, written };
}

/** Addresses built from the pieces that matter: line breaks, NUL, brackets, ordinary text. */
const address = fc
  .array(
    fc.constantFrom(
      'a',
      'b',
      '@',
      '.',
      'customer.test',
      '\r',
      '\n',
      '\r\n',
      '\0',
      '<',
      '>',
      ' ',
      'RCPT TO:',
      'é',
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join(''));
const anyText = fc.oneof(address, fc.string({ unit: 'binary', maxLength: 80 }));

const envelope: fc.Arbitrary<Outgoing> = fc.record({
  id: fc.constant('m1'),
  mailFrom: anyText,
  recipients: fc.array(anyText, { minLength: 1, maxLength: 5 }),
  body: fc.option(fc.constantFrom('7BIT' as const, '8BITMIME' as const), { nil: undefined }),
  smtputf8: fc.option(fc.constant(true as const), { nil: undefined }),
  size: fc.option(fc.nat(), { nil: undefined }),
  text: fc.constant(() => [] as Buffer[]),
});

const EXTENSIONS = new Map<string, readonly string[]>([
  ['8BITMIME', []],
  ['SMTPUTF8', []],
  ['SIZE', []],
  ['PIPELINING', []],
]);

describe('the SMTP wire writer', () => {
  it('never emits a command line with an embedded CR or LF, for any envelope', async () => {
    await checkProperty(
      'wire writer: no embedded CR or LF',
      fc.asyncProperty(envelope, fc.boolean(), async (m, pipelined) => {
        const built = envelopeLines(m, EXTENSIONS, 'mx.test');
        if (!('lines' in built)) return;
        const { lines } = built;
        const { socket, written } = recordingSocket();
        const channel = new ReplyChannel(
          socket,
          'mx.test:25',
          't',
          { line: () => undefined },
          undefined,
        );
        const sent = pipelined
          ? channel.pipeline([lines.mail, ...lines.rcpts, 'DATA'], 1000)
          : [lines.mail, ...lines.rcpts].map((l) => channel.command(l, 1000));
        channel.detach();
        const outcomes = await Promise.allSettled(sent);
        const wire = written.join('');
        // Every write is whole lines, each ended by CRLF, none with a CR or LF inside.
        expect(wire === '' || wire.endsWith('\r\n')).toBe(true);
        for (const line of wire.split('\r\n').slice(0, -1)) expect(line).not.toMatch(/[\r\n]/);
        const unsafe = [lines.mail, ...lines.rcpts].filter((l) => /[\r\n]/.test(l));
        if (unsafe.length) {
          const refused = outcomes.find(
            (o) =>
              o.status === 'rejected' && (o.reason as Error).message.startsWith('refused to send'),
          ) as PromiseRejectedResult | undefined;
          expect(refused).toBeDefined();
          expect(refused!.reason).toBeInstanceOf(DequeueError);
          expect((refused!.reason as DequeueError).kind).toBe('permanent');
          expect((refused!.reason as DequeueError).cause).toBeInstanceOf(Error);
          // Pipelined, nothing of the group went out.
          if (pipelined) expect(wire).toBe('');
        }
      }),
      { ci: 300, fuzzShare: 1 },
    );
  });

  it('refuses an injected transaction by name, and writes nothing of it', async () => {
    const { socket, written } = recordingSocket();
    const channel = new ReplyChannel(
      socket,
      'mx.test:25',
      't',
      { line: () => undefined },
      undefined,
    );
    const reply = channel.command('RCPT TO:<a@customer.test>\r\nDATA', 1000);
    await expect(reply).rejects.toThrow(
      /^refused to send RCPT to mx\.test:25: .* CR at character 25/,
    );
    channel.detach();
    expect(written).toEqual([]);
  });
});
