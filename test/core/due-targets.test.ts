import { describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { dueDecision, isDueInCycle, rotateForCycle } from '../../lambda/core/due-targets';

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
      byCount: true,
    });
    expect(dueDecision(inherit, settings, 3, true)).toEqual({ due: true });
    expect(dueDecision(off, settings, 1, true)).toEqual({ due: false, reason: 'disabled' });
  });
});

describe('rotateForCycle', () => {
  const targets = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];

  it('keeps every target once, in the configured order rotated', () => {
    for (let cycle = 1; cycle <= 20; cycle++) {
      const order = rotateForCycle(targets, cycle);
      const at = targets.indexOf(order[0]!);
      expect(order).toEqual([...targets.slice(at), ...targets.slice(0, at)]);
    }
  });

  it('leads with a different target from one cycle to the next, each in turn over the cycles', () => {
    const leads = Array.from({ length: 14 }, (_, i) => rotateForCycle(targets, i + 1)[0]);
    for (let i = 1; i < leads.length; i++) expect(leads[i]).not.toBe(leads[i - 1]);
    expect(new Set(leads)).toEqual(new Set(targets));
  });

  it('a run that reaches only the first two never reaches the same one two cycles running', () => {
    // Consecutive offsets land far apart (frac(c / φ)): a rotation by one would give each target
    // two cycles in a row and then five without.
    for (let cycle = 1; cycle <= 50; cycle++) {
      const reached = rotateForCycle(targets, cycle).slice(0, 2);
      const next = rotateForCycle(targets, cycle + 1).slice(0, 2);
      expect(reached.filter((t) => next.includes(t))).toEqual([]);
    }
  });

  it('leaves one target or none as it is', () => {
    expect(rotateForCycle(['a'], 5)).toEqual(['a']);
    expect(rotateForCycle([], 5)).toEqual([]);
  });
});
