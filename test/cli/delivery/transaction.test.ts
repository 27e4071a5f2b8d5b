/**
 * The pure rules of one message's transaction (cli/delivery/transaction.ts), with plain values and
 * no socket: which command lines go out, which replies cannot answer their command, and what each
 * recipient's answer is from the replies it got.
 */
import { describe, expect, it } from 'vitest';
import { TimeoutError } from '../../../lambda/core/errors';
import type { SmtpReply } from '../../../lambda/core/smtp/reply';
import {
  dataRefused,
  dotOutcomes,
  envelopeLines,
  envelopeMisfit,
  mailRefused,
  NO_RECIPIENT,
  type Outgoing,
  type TransactionResult,
  rcptOutcomes,
  transactionResult,
} from '../../../cli/delivery/transaction';

const reply = (code: number, text = 'ok'): SmtpReply => ({ code, lines: [text] });
const lost = new TimeoutError('no complete reply from smtp://mx:25 to DATA within 1 s');
const outgoing = (o: Partial<Outgoing> = {}): Outgoing => ({
  id: 'm1',
  mailFrom: 'sender@isp.example',
  recipients: ['a@customer.example', 'b@customer.example'],
  text: () => [],
  ...o,
});
const offered = (...keywords: string[]) => new Map(keywords.map((k) => [k, [] as string[]]));

describe('the envelope lines', () => {
  it('MAIL FROM keeps the null reverse-path and says BODY, SMTPUTF8 and SIZE only when due', () => {
    expect(
      envelopeLines(outgoing({ mailFrom: '', size: 1200 }), offered(), 'smtp://mx:25'),
    ).toEqual({
      lines: {
        mail: 'MAIL FROM:<>',
        rcpts: ['RCPT TO:<a@customer.example>', 'RCPT TO:<b@customer.example>'],
      },
    });
    const envelope = envelopeLines(
      outgoing({ body: '8BITMIME', smtputf8: true, size: 1200 }),
      offered('8BITMIME', 'SMTPUTF8', 'SIZE'),
      'smtp://mx:25',
    );
    expect(envelope).toMatchObject({
      lines: { mail: 'MAIL FROM:<sender@isp.example> BODY=8BITMIME SMTPUTF8 SIZE=1200' },
    });
  });

  it('an 8-bit message to a server without 8BITMIME is kept, and the error says why (RFC 6152 3)', () => {
    const envelope = envelopeLines(outgoing({ body: '8BITMIME' }), offered('SIZE'), 'smtp://mx:25');
    expect(envelope).toMatchObject({ notSent: { error: { kind: 'temporary' } } });
    const { notSent } = envelope as { notSent: TransactionResult };
    expect(notSent.error?.message).toMatch(/smtp:\/\/mx:25 does not offer 8BITMIME.*m1/);
    expect(notSent.recipients.every((o) => o.code === null && !o.final)).toBe(true);
  });

  it('a message that needs SMTPUTF8, to a server without it, fails for every recipient (553 5.6.7)', () => {
    const envelope = envelopeLines(outgoing({ smtputf8: true }), offered('SIZE'), 'smtp://mx:25');
    const { notSent } = envelope as { notSent: TransactionResult };
    expect(notSent.error).toBeNull();
    expect(notSent.recipients.map((o) => [o.address, o.code, o.final])).toEqual([
      ['a@customer.example', 553, true],
      ['b@customer.example', 553, true],
    ]);
    expect(notSent.recipients[0]!.text).toMatch(/^5\.6\.7 not sent: .*SMTPUTF8.*m1/);
  });
});

describe('the pairing check of the envelope', () => {
  const recipients = ['a@customer.example', 'b@customer.example'];

  it('ordinary answers pair: MAIL 250, RCPT 250 / 451 / 550, DATA 354; a missing RCPT reply is no misfit', () => {
    expect(
      envelopeMisfit(recipients, {
        mail: reply(250),
        rcpts: [reply(250), reply(550)],
        data: reply(354),
      }),
    ).toBeNull();
    expect(
      envelopeMisfit(recipients, {
        mail: reply(250),
        rcpts: [reply(451), lost],
        data: NO_RECIPIENT,
      }),
    ).toBeNull();
    expect(
      envelopeMisfit(recipients, {
        mail: reply(550),
        rcpts: [reply(503), reply(503)],
        data: reply(503),
      }),
    ).toBeNull();
  });

  it('a 354 to RCPT names that RCPT (a reply shifted by one)', () => {
    expect(
      envelopeMisfit(recipients, {
        mail: reply(250),
        rcpts: [reply(250), reply(354)],
        data: reply(250),
      }),
    ).toEqual({ command: 'RCPT TO:<b@customer.example>', reply: reply(354) });
  });

  it('a 250 to DATA, and a 354 to MAIL, cannot answer them', () => {
    expect(
      envelopeMisfit(recipients, {
        mail: reply(250),
        rcpts: [reply(250), reply(250)],
        data: reply(250),
      }),
    ).toEqual({ command: 'DATA', reply: reply(250) });
    expect(
      envelopeMisfit(recipients, { mail: reply(354), rcpts: [], data: NO_RECIPIENT }),
    ).toMatchObject({ command: 'MAIL' });
  });

  it('a RCPT accepted, or DATA answered 354, after MAIL was refused', () => {
    expect(
      envelopeMisfit(recipients, { mail: reply(451), rcpts: [reply(250)], data: reply(503) }),
    ).toMatchObject({ command: 'RCPT TO:<a@customer.example> after MAIL was refused' });
    expect(
      envelopeMisfit(recipients, {
        mail: reply(451),
        rcpts: [reply(503), reply(503)],
        data: reply(354),
      }),
    ).toMatchObject({ command: 'DATA after MAIL was refused' });
  });
});

describe("each recipient's outcome", () => {
  it('MAIL refused: 550 refuses every recipient for good; 451 leaves them all waiting, with an error', () => {
    const recipients = ['a@customer.example', 'b@customer.example'];
    const refused = mailRefused(recipients, reply(550, 'sender rejected'));
    expect(refused.recipients).toEqual([
      { address: 'a@customer.example', code: 550, text: 'sender rejected', final: true },
      { address: 'b@customer.example', code: 550, text: 'sender rejected', final: true },
    ]);
    expect(refused.error).toBeNull();
    const later = mailRefused(recipients, reply(451, 'try later'));
    expect(later.recipients.every((o) => !o.final && o.code === 451)).toBe(true);
    expect(later.error?.message).toBe('MAIL FROM refused for now: 451 try later');
  });

  it('RCPT: a refusal or no reply is the outcome; the accepted wait for the dot, in RCPT order', () => {
    const { outcomes, accepted } = rcptOutcomes(
      ['a@x.example', 'b@x.example', 'c@x.example', 'd@x.example'],
      [reply(451, 'later'), reply(250), reply(550, 'no such user'), lost],
    );
    expect(accepted).toEqual(['b@x.example']);
    expect(outcomes).toEqual([
      { address: 'a@x.example', code: 451, text: 'later', final: false },
      { address: 'c@x.example', code: 550, text: 'no such user', final: true },
      { address: 'd@x.example', code: null, text: lost.message, final: false },
    ]);
  });

  it('DATA refused: 554 is final for the accepted recipients; 451 and no reply keep them, with an error', () => {
    const forGood = dataRefused(['a@x.example'], reply(554, 'no'));
    expect(forGood.outcomes).toEqual([
      { address: 'a@x.example', code: 554, text: 'DATA refused: 554 no', final: true },
    ]);
    expect(forGood.error).toBeNull();
    const forNow = dataRefused(['a@x.example'], reply(451, 'busy'));
    expect(forNow.outcomes[0]).toMatchObject({ code: 451, final: false });
    expect(forNow.error?.message).toBe('DATA refused: 451 busy');
    const none = dataRefused(['a@x.example'], lost);
    expect(none.outcomes[0]).toMatchObject({ code: null, text: lost.message, final: false });
    expect(none.error?.message).toBe(lost.message);
    expect(dataRefused([], NO_RECIPIENT).error).toBeNull();
  });

  it('the final dot: one reply for all in SMTP, one per accepted recipient in LMTP (RFC 2033 4.2)', () => {
    const replies = [reply(250, 'queued'), reply(552, 'over quota')];
    const smtp = dotOutcomes(['a@x.example', 'b@x.example'], replies, false);
    expect(smtp).toEqual({
      outcomes: [
        { address: 'a@x.example', code: 250, text: 'queued', final: true },
        { address: 'b@x.example', code: 250, text: 'queued', final: true },
      ],
      error: null,
    });
    const lmtp = dotOutcomes(['a@x.example', 'b@x.example'], replies, true);
    expect(lmtp).toMatchObject({
      outcomes: [
        { address: 'a@x.example', code: 250 },
        { address: 'b@x.example', code: 552, final: true },
      ],
    });
  });

  it('the final dot unanswered leaves the recipient waiting; a 3xx to it is a misfit', () => {
    const unanswered = dotOutcomes(['a@x.example', 'b@x.example'], [reply(250), lost], true);
    expect(unanswered).toMatchObject({
      outcomes: [
        { code: 250, final: true },
        { code: null, text: `no reply to the final dot: ${lost.message}`, final: false },
      ],
      error: lost,
    });
    expect(dotOutcomes(['a@x.example'], [reply(354)], false)).toEqual({
      misfit: { command: 'the final dot', reply: reply(354) },
    });
  });

  it('the result lists the recipients in their own order, and says when some still wait', () => {
    const result = transactionResult(
      ['a@x.example', 'b@x.example'],
      [
        { address: 'b@x.example', code: 250, text: 'ok', final: true },
        { address: 'a@x.example', code: 451, text: 'later', final: false },
      ],
      null,
    );
    expect(result.recipients.map((o) => o.address)).toEqual(['a@x.example', 'b@x.example']);
    expect(result.error?.message).toBe('some recipients were deferred');
    const done = transactionResult(
      ['a@x.example'],
      [{ address: 'a@x.example', code: 250, text: 'ok', final: true }],
      null,
    );
    expect(done.error).toBeNull();
  });
});
