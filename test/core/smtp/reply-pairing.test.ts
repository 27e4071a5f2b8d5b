/**
 * The reply-pairing rules both clients keep (lambda/core/smtp/reply-pairing.ts), with plain
 * values: which codes each command can have, what a refused MAIL leaves, the reply nobody asked
 * for, and the pipelined group with a reply missing.
 */
import { describe, expect, it } from 'vitest';
import { ProtocolError, TimeoutError } from '../../../lambda/core/errors';
import {
  canAnswer,
  canAnswerAfterRefusedMail,
  groupMissingReply,
  type PairedCommand,
  replyForNoCommand,
} from '../../../lambda/core/smtp/reply-pairing';

/** Every code a reply line can carry (smtp/reply.ts accepts 200 to 599). */
const codes = Array.from({ length: 400 }, (_, i) => 200 + i);
const answering = (command: PairedCommand) => codes.filter((c) => canAnswer(command, c));
const refusals = codes.filter((c) => c >= 400);

describe('what a reply to each command may be', () => {
  it('MAIL, RCPT and the end of data: a 2xx or a refusal, never a 3xx (RFC 5321 4.3.2)', () => {
    for (const command of ['MAIL', 'RCPT', 'end of data'] as const) {
      expect(answering(command)).toEqual([...codes.filter((c) => c < 300), ...refusals]);
    }
  });

  it("DATA: 354 or a refusal; a 250 to DATA is another command's reply", () => {
    expect(answering('DATA')).toEqual([354, ...refusals]);
  });

  it("ETRN: 250, 251, 252, 253 (RFC 1985 5) or a refusal; a 221 to ETRN is the QUIT's, shifted", () => {
    expect(answering('ETRN')).toEqual([250, 251, 252, 253, ...refusals]);
  });

  it('QUIT: 221 only; RSET: a 2xx only (refused, the next transaction cannot start clean)', () => {
    expect(answering('QUIT')).toEqual([221]);
    expect(answering('RSET')).toEqual(codes.filter((c) => c < 300));
  });

  it('after a refused MAIL, a RCPT cannot be accepted and DATA cannot get 354 (RFC 2920 3.1)', () => {
    expect(canAnswerAfterRefusedMail('RCPT', 250)).toBe(false);
    expect(canAnswerAfterRefusedMail('RCPT', 503)).toBe(true);
    expect(canAnswerAfterRefusedMail('DATA', 354)).toBe(false);
    expect(canAnswerAfterRefusedMail('DATA', 503)).toBe(true);
  });
});

describe('a reply with no command waiting', () => {
  it('is a protocol error naming the peer and the reply', () => {
    const error = replyForNoCommand('relay.isp.example:25', { code: 250, lines: ['two', 'x'] });
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.kind).toBe('temporary');
    expect(error.message).toBe('relay.isp.example:25 sent a reply nobody asked for: 250 two');
  });

  it('but a 421 is the server closing (RFC 5321 3.8), not a pairing fault', () => {
    const error = replyForNoCommand('lmtp:/run/dovecot/lmtp', {
      code: 421,
      lines: ['4.3.2 Shutting down'],
    });
    expect(error).not.toBeInstanceOf(ProtocolError);
    expect(error.kind).toBe('temporary');
    expect(error.message).toBe(
      'lmtp:/run/dovecot/lmtp is closing the connection: 421 4.3.2 Shutting down',
    );
  });
});

describe('a pipelined group', () => {
  it('with a reply missing is not believed: the first missing reply is the error', () => {
    const lost = new TimeoutError('no complete reply to RCPT TO:<b@x.example> within 1 s');
    const later = new TimeoutError('no complete reply to DATA within 1 s');
    const ok = { code: 250, lines: ['ok'] };
    expect(groupMissingReply([ok, ok, { code: 354, lines: ['go'] }])).toBeNull();
    expect(groupMissingReply([ok, lost, later])).toBe(lost);
  });
});
