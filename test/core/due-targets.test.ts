import { describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { dueDecision, isDueInCycle } from '../../lambda/core/due-targets';

const dueCycles = (interval: number, upTo = 10) =>
  Array.from({ length: upTo }, (_, i) => i + 1).filter((c) => isDueInCycle(c, interval));

describe('due targets', () => {
  it('0 and 1 mean every cycle', () => {
    expect(dueCycles(0)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(dueCycles(1)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('every Nth cycle signals in cycles 1, N+1, 2N+1, ...', () => {
    expect(dueCycles(3)).toEqual([1, 4, 7, 10]);
    expect(dueCycles(4, 12)).toEqual([1, 5, 9]);
  });

  it('a target overrides the setting; disabled targets are never due, even forced', () => {
    const settings = parseSettings({ everyNthCycle: 5 }, 'test');
    const own = parseTarget(
      { name: 'a', host: 'h.test', everyNthCycle: 2, command: 'ETRN x.test' },
      'test',
    );
    const inherit = parseTarget({ name: 'b', host: 'h.test', command: 'ETRN x.test' }, 'test');
    const off = parseTarget({ name: 'c', host: 'h.test', enabled: false }, 'test');
    expect(dueDecision(own, settings, 3, false)).toEqual({ due: true });
    expect(dueDecision(inherit, settings, 3, false)).toEqual({
      due: false,
      reason: 'not due: signals every 5 cycles, next in cycle 6',
    });
    expect(dueDecision(inherit, settings, 3, true)).toEqual({ due: true });
    expect(dueDecision(off, settings, 1, true)).toEqual({ due: false, reason: 'disabled' });
  });
});
