/** RFC 2645 section 4 ATRN replies as documented outcomes (docs/outcomes.md) (lambda/core/outcome.ts holds the table). */
import { expect, it } from 'vitest';
import { outcomeOfReply } from '../../lambda/core/outcome';

it.each([
  [250, 'signalled'],
  [453, 'no-mail'],
  [450, 'permanent-failure'],
  [451, 'temporary-failure'],
  [501, 'permanent-failure'],
  [502, 'permanent-failure'],
  [530, 'permanent-failure'],
])('ATRN %i is %s', (code, outcome) => {
  expect(outcomeOfReply('ATRN', code)).toBe(outcome);
});
