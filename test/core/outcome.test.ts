import { describe, expect, it } from 'vitest';
import { outcomeOfReply } from '../../lambda/core/outcome';
import { worstOutcome } from '../../lambda/core/result';

describe('outcome table', () => {
  it.each([
    ['ETRN', 250, 'signalled'],
    ['ETRN', 251, 'no-mail'],
    ['ETRN', 252, 'signalled'],
    ['ETRN', 253, 'signalled'],
    ['ETRN', 458, 'temporary-failure'],
    ['ETRN', 459, 'permanent-failure'],
    ['ETRN', 450, 'temporary-failure'],
    ['ETRN', 500, 'permanent-failure'],
    ['ETRN', 501, 'permanent-failure'],
    ['ETRN', 502, 'permanent-failure'],
    ['ETRN', 554, 'permanent-failure'],
    ['ETRN', 421, 'temporary-failure'],
    ['QSND', 250, 'signalled'],
    ['QSND', 251, 'no-mail'],
    ['QSND', 459, 'permanent-failure'],
    ['ATRN', 250, 'signalled'],
    ['ATRN', 453, 'no-mail'],
    ['ATRN', 450, 'permanent-failure'],
    ['ATRN', 451, 'temporary-failure'],
    ['ATRN', 530, 'permanent-failure'],
    ['ATRN', 502, 'permanent-failure'],
    ['ATRN', 501, 'permanent-failure'],
    // 251 and 459 are ETRN's; another verb's 459 is an ordinary 4xx.
    ['NOOP', 459, 'temporary-failure'],
    ['ATRN', 251, 'signalled'],
  ] as const)('%s %i -> %s', (verb, code, outcome) => {
    expect(outcomeOfReply(verb, code)).toBe(outcome);
  });

  it('combines several commands: a failure if any failed, else signalled if any was accepted, else no-mail', () => {
    expect(worstOutcome(['no-mail', 'signalled'])).toBe('signalled');
    expect(worstOutcome(['no-mail', 'no-mail'])).toBe('no-mail');
    expect(worstOutcome(['signalled', 'temporary-failure', 'no-mail'])).toBe('temporary-failure');
    expect(worstOutcome(['temporary-failure', 'permanent-failure'])).toBe('permanent-failure');
  });
});
