/**
 * Which recipients a message's DSN must name, and where the message goes (cli/delivery/bounce-due.ts),
 * from the answers alone: what an operator would see in failed/ and in the sender's mailbox.
 */
import { describe, expect, it } from 'vitest';
import { dsnDue, settle } from '../../../cli/delivery/bounce-due';
import type { DsnRecord } from '../../../cli/delivery/mail-store';
import { messageOutcome } from '../../../cli/delivery/message-outcome';
import { pastGiveUp, parseGiveUpAfter, durationWords } from '../../../cli/delivery/give-up';

const ok = { address: 'ok@c.test', code: 250, text: 'Ok', final: true };
const no = { address: 'no@c.test', code: 550, text: '5.1.1 unknown', final: true };
const later = { address: 'later@c.test', code: 451, text: '4.2.0 busy', final: false };
const all = [ok.address, no.address, later.address];
const decided = (outcomes: (typeof ok)[]) =>
  messageOutcome(all, new Map(), { recipients: outcomes, error: null });
const sent = (recipients: string[]): DsnRecord => ({
  messageId: 'x.dsn1@h',
  to: 's@o.test',
  via: 'smtp://h:25',
  recipients,
  at: '2026-12-07T00:00:00Z',
  code: 250,
  text: 'Ok',
});

describe('dsnDue and settle', () => {
  it('a 5xx is owed at once; the message waits for the 4xx one, and leaves once the DSN is sent', () => {
    const d = decided([ok, no, later]);
    const due = dsnDue('s@o.test', d, [], false);
    expect(due).toMatchObject({ owed: [no.address], expired: [], suppressed: false });
    expect(settle(d, due, true).outcome).toBe('deferred');
    const done = decided([ok, no, { ...later, code: 250, final: true }]);
    expect(settle(done, dsnDue('s@o.test', done, [], false), false)).toMatchObject({
      outcome: 'deferred',
      error: expect.stringMatching(/DSN to its sender is not sent yet/),
    });
    expect(settle(done, dsnDue('s@o.test', done, [], false), true).outcome).toBe('failed');
  });

  it('a recipient already reported is not reported again', () => {
    const d = decided([ok, no, { ...later, code: 250, final: true }]);
    const due = dsnDue('s@o.test', d, [sent([no.address])], false);
    expect(due.owed).toEqual([]);
    expect(settle(d, due, false).outcome).toBe('failed');
  });

  it('at the give-up time every recipient still waiting is given up with its last reply', () => {
    const d = decided([ok, no, later]);
    const due = dsnDue('s@o.test', d, [sent([no.address])], true);
    expect(due.owed).toEqual([later.address]);
    expect(due.expired).toEqual([
      { address: later.address, code: 451, text: '4.2.0 busy', expired: true },
    ]);
    expect(settle(d, due, true)).toMatchObject({
      outcome: 'failed',
      error: expect.stringMatching(/given up for <later@c\.test>/),
    });
  });

  it('the null reverse-path owes nothing and leaves as it would', () => {
    const d = decided([ok, no, { ...later, code: 250, final: true }]);
    const due = dsnDue('', d, [], false);
    expect(due.suppressed).toBe(true);
    expect(settle(d, due, false).outcome).toBe('failed');
  });

  it('every recipient accepted: delivered, no DSN', () => {
    const d = messageOutcome([ok.address], new Map(), { recipients: [ok], error: null });
    const due = dsnDue('s@o.test', d, [], true);
    expect(due.owed).toEqual([]);
    expect(settle(d, due, false)).toEqual({ outcome: 'delivered', error: null });
  });
});

describe('--give-up-after', () => {
  it('reads days, hours, minutes and seconds, alone or together; refuses anything else', () => {
    expect(parseGiveUpAfter('5d')).toBe(5 * 86_400_000);
    expect(parseGiveUpAfter('4d12h')).toBe(108 * 3_600_000);
    expect(parseGiveUpAfter('90m')).toBe(5_400_000);
    for (const bad of ['', '5', 'd', '0d', '-1d', '5 d', '1y', '367d'])
      expect(() => parseGiveUpAfter(bad), bad).toThrow(/--give-up-after/);
    expect(durationWords(5 * 86_400_000)).toBe('5 days');
    expect(durationWords(3_600_000)).toBe('1 hour');
    expect(durationWords(5_400_000)).toBe('90 minutes');
  });

  it('counts from when we accepted the message; an unreadable time is never given up', () => {
    const now = new Date('2026-12-07T12:00:00Z');
    expect(pastGiveUp('2026-12-02T12:00:00Z', now, 5 * 86_400_000)).toBe(true);
    expect(pastGiveUp('2026-12-02T12:00:01Z', now, 5 * 86_400_000)).toBe(false);
    expect(pastGiveUp('garbage', now, 1)).toBe(false);
    expect(pastGiveUp(undefined, now, 1)).toBe(false);
  });
});
