/**
 * The parts of DATA in the reversed session that decide with no socket: the envelope stored
 * beside a message, where its size stands, what follows the final dot, and our answer when the
 * sink would not take it.
 */
import { describe, expect, it } from 'vitest';
import { DequeueError } from '../../../lambda/core/errors';
import { afterTheDot, answerToSinkError, sizeLimit } from '../../../lambda/core/odmr/dot-verdict';
import {
  messageEnvelope,
  type Received,
  type Transaction,
} from '../../../lambda/core/odmr/message-envelope';
import type { MessageDraft } from '../../../lambda/core/ports';

const received: Received = {
  id: '20240102T030405123Z-1a2b3c4d5e6f',
  date: new Date('2024-01-02T03:04:05.123Z'),
  provider: 'relay.isp.example:366',
  target: 'isp-atrn',
  heloName: 'relay.isp.example',
  tls: true,
  traceBytes: 180,
};

const draft: MessageDraft = {
  write: async () => undefined,
  commit: async () => ({ id: received.id, location: 'mail/x.eml', bytes: 1 }),
  abort: async () => undefined,
};

describe('messageEnvelope', () => {
  it('is the transaction as it stood at DATA, with when, from whom and over what it came', () => {
    const tx: Transaction = {
      mailFrom: 'sender@origin.example',
      rcptTo: ['a@customer.example', 'b@customer.example'],
      body: '8BITMIME',
      declaredSize: 4096,
    };
    const envelope = messageEnvelope(tx, received);
    tx.rcptTo.push('late@customer.example');
    expect(envelope).toEqual({
      id: received.id,
      mailFrom: 'sender@origin.example',
      rcptTo: ['a@customer.example', 'b@customer.example'],
      body: '8BITMIME',
      declaredSize: 4096,
      receivedAt: '2024-01-02T03:04:05.123Z',
      provider: 'relay.isp.example:366',
      target: 'isp-atrn',
      heloName: 'relay.isp.example',
      tls: true,
      traceBytes: 180,
    });
  });

  it('leaves BODY and SIZE out when MAIL did not give them (the null sender too)', () => {
    const envelope = messageEnvelope({ mailFrom: '', rcptTo: ['a@customer.example'] }, received);
    expect(envelope).not.toHaveProperty('body');
    expect(envelope).not.toHaveProperty('declaredSize');
    expect(envelope.mailFrom).toBe('');
  });

  it('keeps a declared SIZE of 0', () => {
    const envelope = messageEnvelope(
      { mailFrom: 'sender@origin.example', rcptTo: ['a@customer.example'], declaredSize: 0 },
      received,
    );
    expect(envelope.declaredSize).toBe(0);
  });
});

describe('sizeLimit', () => {
  it('stores up to the limit, reads on past it, cuts off past twice it (RFC 1870 6.3)', () => {
    expect(sizeLimit(0, 100)).toBe('within');
    expect(sizeLimit(100, 100)).toBe('within');
    expect(sizeLimit(101, 100)).toBe('over');
    expect(sizeLimit(200, 100)).toBe('over');
    expect(sizeLimit(201, 100)).toBe('cut-off');
  });
});

describe('afterTheDot', () => {
  it('refuses a message over the limit for good, naming its size, even when a write failed', () => {
    const verdict = afterTheDot(
      'm1',
      { size: 101, draft: null, failure: new DequeueError('temporary', 'disk full') },
      100,
    );
    expect(verdict).toEqual({
      answer: 'too-big',
      reply: '552 5.3.4 Message size exceeds fixed maximum message size (100)',
      refusal: 'message m1 of 101 bytes exceeds maxMessageBytes 100',
    });
  });

  it('does not store a message whose write failed, with the sink’s own error', () => {
    const failure = new DequeueError('temporary', 'disk full');
    expect(afterTheDot('m1', { size: 10, draft, failure }, 100)).toEqual({
      answer: 'not-stored',
      error: failure,
    });
  });

  it('does not store a message whose draft was dropped, as a temporary failure', () => {
    const verdict = afterTheDot('m1', { size: 10, draft: null, failure: null }, 100);
    expect(verdict.answer).toBe('not-stored');
    if (verdict.answer !== 'not-stored') return;
    expect(verdict.error.kind).toBe('temporary');
    expect(verdict.error.message).toBe('the sink dropped the message');
  });

  it('commits a whole message at the limit', () => {
    expect(afterTheDot('m1', { size: 100, draft, failure: null }, 100)).toEqual({
      answer: 'commit',
      draft,
    });
  });
});

describe('answerToSinkError', () => {
  it('a refusal for good is 554 with the destination’s words, and counted as refused', () => {
    const answer = answerToSinkError(
      'm1',
      new DequeueError('permanent', `550 5.1.1 no such user\r\n${'x'.repeat(300)}`),
      'could not be stored',
    );
    expect(answer.reply).toMatch(/^554 5\.3\.0 Message refused by the destination: 550 5\.1\.1/);
    expect(answer.reply).not.toMatch(/[\r\n]/);
    expect(answer.reply.length).toBeLessThan(300);
    expect(answer.refusal).toMatch(/^message m1: 550 5\.1\.1 no such user/);
    expect(answer.sinkFailure).toBeUndefined();
  });

  it('anything else is 451, and the session closes at the next command: the provider keeps it', () => {
    const cause = new DequeueError('temporary', 'S3 unreachable');
    const answer = answerToSinkError('m1', cause, 'was not accepted');
    expect(answer.reply).toBe(
      '451 4.3.0 Local error in processing, message not stored; try again later',
    );
    expect(answer.refusal).toBeUndefined();
    expect(answer.sinkFailure?.kind).toBe('temporary');
    expect(answer.sinkFailure?.message).toBe(
      'message m1 was not accepted, the provider keeps it: S3 unreachable',
    );
    expect(answer.sinkFailure?.cause).toBe(cause);
  });
});
