/** The function's environment contract: the alarm thresholds the stack sets, read as the stack names them. */
import { describe, expect, it } from 'vitest';
import { EGRESS_PORTS_ENV } from '../../lib/function-egress';
import {
  FAILING_AFTER_CYCLES_ENV as STACK_FAILING,
  SERVER_DOWN_AFTER_CYCLES_ENV as STACK_SERVER_DOWN,
  STALE_AFTER_HOURS_ENV as STACK_STALE,
} from '../../lib/signaller-alarms';
import {
  FAILING_AFTER_CYCLES_ENV,
  readEnvironment,
  SERVER_DOWN_AFTER_CYCLES_ENV,
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

  it('the server-down threshold is the variable the stack sets, default 4 checks', () => {
    expect(SERVER_DOWN_AFTER_CYCLES_ENV).toBe(STACK_SERVER_DOWN);
    expect(readEnvironment(base).serverDownAfterCycles).toBe(4);
    expect(
      readEnvironment({ ...base, [SERVER_DOWN_AFTER_CYCLES_ENV]: '8' }).serverDownAfterCycles,
    ).toBe(8);
    expect(() => readEnvironment({ ...base, [SERVER_DOWN_AFTER_CYCLES_ENV]: '1.5' })).toThrow(
      'DEQUEUE_SERVER_DOWN_AFTER_CYCLES: "1.5" must be a whole number greater than 0',
    );
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

describe('the ports the function may reach', () => {
  it('are read from the variable the stack sets; without it, any port', () => {
    expect(readEnvironment({ ...base, [EGRESS_PORTS_ENV]: '25,79,443' }).egressPorts).toEqual([
      25, 79, 443,
    ]);
    expect(readEnvironment(base).egressPorts).toBeUndefined();
  });

  it('refuse what is not a list of TCP ports, naming the variable', () => {
    expect(() => readEnvironment({ ...base, [EGRESS_PORTS_ENV]: '25,smtp' })).toThrow(
      'environment: DEQUEUE_EGRESS_PORTS: "25,smtp" must be TCP ports (1 to 65535), comma-separated',
    );
  });
});
