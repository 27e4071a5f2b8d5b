/** The function's environment contract: the alarm thresholds the stack sets, read as the stack names them. */
import { describe, expect, it } from 'vitest';
import {
  FAILING_AFTER_CYCLES_ENV as STACK_FAILING,
  STALE_AFTER_HOURS_ENV as STACK_STALE,
} from '../../lib/signaller-alarms';
import {
  FAILING_AFTER_CYCLES_ENV,
  readEnvironment,
  STALE_AFTER_HOURS_ENV,
} from '../../lambda/environment';

const base = { DEQUEUE_COUNTER_TABLE: 't' };

describe('the failing and stale thresholds in the environment', () => {
  it('are the variables the stack sets, with the stack defaults 3 cycles and 24 hours', () => {
    expect([FAILING_AFTER_CYCLES_ENV, STALE_AFTER_HOURS_ENV]).toEqual([STACK_FAILING, STACK_STALE]);
    expect(readEnvironment(base)).toMatchObject({ failingAfterCycles: 3, staleAfterHours: 24 });
    expect(
      readEnvironment({ ...base, [FAILING_AFTER_CYCLES_ENV]: '5', [STALE_AFTER_HOURS_ENV]: '1.5' }),
    ).toMatchObject({ failingAfterCycles: 5, staleAfterHours: 1.5 });
  });

  it('refuse what is not a positive number, naming the variable', () => {
    expect(() => readEnvironment({ ...base, [FAILING_AFTER_CYCLES_ENV]: '2.5' })).toThrow(
      'environment: DEQUEUE_FAILING_AFTER_CYCLES: "2.5" must be a whole number greater than 0',
    );
    expect(() => readEnvironment({ ...base, [STALE_AFTER_HOURS_ENV]: '0' })).toThrow(
      'DEQUEUE_STALE_AFTER_HOURS: "0" must be a number greater than 0',
    );
  });
});
