/**
 * The deadline rule of a cycle's work and the target's lease, with plain values (run-cycle.test.ts
 * runs the work on the wire, test/lambda/target-lease.test.ts the lease on moto).
 */
import { describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { DequeueError } from '../../lambda/core/errors';
import type { TargetLeases } from '../../lambda/core/ports';
import type { TargetResult } from '../../lambda/core/result';
import { startsInTime, TARGET_BUSY, workTargets } from '../../lambda/core/work-targets';

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

describe('the lease around a target’s session', () => {
  const settings = parseSettings({}, 'test');
  const run = { cycle: 7, settings, deadline: Date.now() + 60_000 };
  const events: string[] = [];

  function leases(answer: 'held' | 'busy' | 'fails'): TargetLeases {
    return {
      hold: async (name, until) => {
        events.push(`hold ${name} until deadline: ${until === run.deadline}`);
        if (answer === 'fails') throw new DequeueError('temporary', 'DynamoDB is away');
        if (answer === 'busy') return undefined;
        return { release: async () => void events.push(`release ${name}`) };
      },
    };
  }

  async function work(answer: 'held' | 'busy' | 'fails') {
    events.length = 0;
    const results: [TargetResult, boolean][] = [];
    await workTargets(
      [target()],
      run,
      {
        credentials: { get: async () => ({ username: 'u', password: 'p' }) },
        counter: {
          // Another delivery of the slot claimed it: nothing is sent, nothing connects.
          claim: async () => {
            events.push('claim');
            return false;
          },
        },
        leases: leases(answer),
      },
      (result, untried) => results.push([result, untried]),
    );
    return results.map(([r, untried]) => [r.outcome, r.reason ?? r.error, untried]);
  }

  it('is held before the claim, until the run’s deadline, and given back whatever the claim says', async () => {
    expect(await work('held')).toEqual([['skipped', 'already signalled in cycle 7', false]]);
    expect(events).toEqual(['hold a until deadline: true', 'claim', 'release a']);
  });

  it('held by another run: the target is skipped, nothing claimed, left to the next cycle', async () => {
    expect(await work('busy')).toEqual([['skipped', TARGET_BUSY, false]]);
    expect(events).toEqual(['hold a until deadline: true']);
  });

  it('not to be had (DynamoDB failing): a temporary failure, untried, nothing claimed', async () => {
    expect(await work('fails')).toEqual([['temporary-failure', 'DynamoDB is away', true]]);
    expect(events).toEqual(['hold a until deadline: true']);
  });
});
