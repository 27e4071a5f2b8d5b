/** Which not-due targets a cycle checks again, as plain values (cycle-plan.ts). */
import { describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../../lambda/core/config';
import { planCycle, recheckCandidates, selectTargets } from '../../../lambda/core/cycle-plan';

const settings = parseSettings({ everyNthCycle: 3 }, 'test');
const target = (name: string, extra: object = {}) =>
  parseTarget(
    {
      name,
      host: 'relay.isp.example',
      command: `ETRN ${name}.example`,
      precheck: { host: `mx.${name}.example` },
      ...extra,
    },
    'test',
  );
const config = {
  settings,
  targets: [
    target('down'),
    target('unchecked', { precheck: false }),
    target('off', { enabled: false }),
  ],
  invalid: [],
};

describe('checking a down server again in a cycle it is not due', () => {
  it('candidates: not due by the count, with a precheck; never disabled ones', () => {
    expect(recheckCandidates(selectTargets(config), settings, 2, false)).toEqual(['down']);
    // Cycle 4 is due for all: nothing to check again.
    expect(recheckCandidates(selectTargets(config), settings, 4, false)).toEqual([]);
  });

  it('a target the store says is down is worked; the others stay not due', () => {
    const plan = planCycle(selectTargets(config), settings, 2, {
      force: false,
      counted: true,
      claims: false,
      recheck: new Set(['down', 'off']),
    });
    expect(plan.work.map((t) => t.name)).toEqual(['down']);
    expect(plan.settled.map((s) => [s.result.target, s.result.reason])).toEqual([
      ['unchecked', 'not due: signals every 3 cycles, next in cycle 4'],
      ['off', 'disabled'],
    ]);
  });
});
