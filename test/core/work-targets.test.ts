/** The deadline rule of a cycle's work, with plain values (run-cycle.test.ts runs it on the wire). */
import { describe, expect, it } from 'vitest';
import { parseTarget } from '../../lambda/core/config';
import { startsInTime } from '../../lambda/core/work-targets';

const target = (timeoutSeconds?: number) =>
  parseTarget(
    {
      name: 'a',
      host: 'relay.isp.example',
      command: 'ETRN a.example',
      ...(timeoutSeconds ? { timeoutSeconds } : {}),
    },
    'test',
  );

describe('startsInTime', () => {
  it('starts anything when the run has no deadline', () => {
    expect(startsInTime(target(), 1_000, undefined)).toBe(true);
  });

  it('starts a target only when one reply’s bound still fits before the deadline', () => {
    expect(startsInTime(target(5), 0, 5_000)).toBe(true);
    expect(startsInTime(target(5), 1, 5_000)).toBe(false);
  });

  it('asks no more than the default 30 s of a target with a longer timeout', () => {
    expect(startsInTime(target(600), 0, 30_000)).toBe(true);
    expect(startsInTime(target(600), 1, 30_000)).toBe(false);
    expect(startsInTime(target(), 0, 30_000)).toBe(true);
    expect(startsInTime(target(), 1, 30_000)).toBe(false);
  });
});
