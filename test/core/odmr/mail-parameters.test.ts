/** MAIL's parameters after the turn, as values (lambda/core/odmr/mail-parameters.ts). */
import { describe, expect, it } from 'vitest';
import { mailParameters } from '../../../lambda/core/odmr/mail-parameters';

const params = (entries: [string, string | true][]) => new Map(entries);

describe("MAIL's parameters", () => {
  it('takes SIZE, BODY (any case) and SMTPUTF8 after EHLO', () => {
    expect(
      mailParameters(
        params([
          ['SIZE', '1200'],
          ['BODY', '8bitmime'],
          ['SMTPUTF8', true],
        ]),
        'a@b.test',
        true,
        5000,
      ),
    ).toEqual({ ok: true, declaredSize: 1200, body: '8BITMIME', smtputf8: true });
  });

  it('refuses a declared SIZE over the limit for good, naming the sender (RFC 1870 6.1)', () => {
    expect(mailParameters(params([['SIZE', '5001']]), 'a@b.test', true, 5000)).toEqual({
      ok: false,
      reply: '552 5.3.4 Message size exceeds fixed maximum message size (5000)',
      refusal: 'a message of 5001 bytes from <a@b.test> exceeds maxMessageBytes 5000',
    });
  });

  it('refuses what was not advertised: any parameter after HELO, an unknown one, a bad value', () => {
    for (const [entries, esmtp] of [
      [[['SIZE', '10']], false],
      [[['XFOO', 'bar']], true],
      [[['BODY', 'BINARYMIME']], true],
      [[['SMTPUTF8', 'yes']], true],
    ] as const) {
      const result = mailParameters(
        params([...entries] as [string, string][]),
        'a@b.test',
        esmtp,
        5000,
      );
      expect(result).toMatchObject({ ok: false, reply: expect.stringMatching(/^555 5\.5\.4 /) });
      expect(result).not.toHaveProperty('refusal');
    }
  });
});
