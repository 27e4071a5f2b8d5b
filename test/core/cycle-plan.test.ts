/** A cycle's plan with no network: which targets were asked for, which are due, what is reported. */
import { describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { planCycle, selectTargets, settledResult } from '../../lambda/core/cycle-plan';
import { ConfigError } from '../../lambda/core/errors';
import type { LoadedConfig } from '../../lambda/core/ports';

const target = (name: string, extra = {}) =>
  parseTarget(
    { name, host: 'relay.isp.example', command: `ETRN ${name}.example`, ...extra },
    'test',
  );
const config = (settings: unknown = {}): LoadedConfig => ({
  settings: parseSettings(settings, 'test'),
  targets: [target('a'), target('b', { everyNthCycle: 2 }), target('c', { enabled: false })],
  invalid: [
    { name: 'broken', error: new ConfigError('test', 'targets[3].port', 'must be 1-65535') },
  ],
});
const terms = { force: false, counted: true, claims: false };
const summary = (plan: ReturnType<typeof planCycle>) => ({
  settled: plan.settled.map(({ result, recorded }) => [
    result.target,
    result.outcome,
    result.reason ?? result.error,
    recorded,
  ]),
  work: plan.work.map((t) => t.name),
});

describe('selectTargets', () => {
  it('takes every target when no names are given, and reports the invalid ones first', () => {
    const selection = selectTargets(config());
    expect(selection.selected.map((t) => t.name)).toEqual(['a', 'b', 'c']);
    expect(selection.invalid.map((t) => t.name)).toEqual(['broken']);
    expect(selection.unknown).toEqual([]);
    expect(selection.empty).toBe(false);
    expect(selection.order).toEqual(['broken', 'a', 'b', 'c']);
  });

  it('takes only the named targets; a name the configuration lacks is unknown, reported last', () => {
    const selection = selectTargets(config(), ['nope', 'b', 'broken']);
    expect(selection.selected.map((t) => t.name)).toEqual(['b']);
    expect(selection.invalid.map((t) => t.name)).toEqual(['broken']);
    expect(selection.unknown).toEqual(['nope']);
    expect(selection.order).toEqual(['broken', 'b', 'nope']);
  });

  it('is empty only when there is no target at all and none was asked for', () => {
    const none: LoadedConfig = { settings: parseSettings({}, 'test'), targets: [], invalid: [] };
    expect(selectTargets(none).empty).toBe(true);
    expect(selectTargets(none, ['x']).empty).toBe(false);
    expect(selectTargets(config(), ['nope']).empty).toBe(false);
  });
});

describe('planCycle', () => {
  it('works the due targets; the invalid, unknown and not-due ones are settled with a reason', () => {
    const plan = planCycle(
      selectTargets(config(), ['broken', 'a', 'b', 'c', 'nope']),
      config().settings,
      2,
      terms,
    );
    expect(summary(plan)).toEqual({
      settled: [
        ['broken', 'config-error', 'test: targets[3].port: must be 1-65535', true],
        ['nope', 'config-error', 'no target named "nope" in the configuration', false],
        ['b', 'skipped', 'not due: signals every 2 cycles, next in cycle 3', true],
        ['c', 'skipped', 'disabled', true],
      ],
      work: ['a'],
    });
  });

  it('force works a target that is not due, never a disabled one', () => {
    const plan = planCycle(selectTargets(config()), config().settings, 2, {
      ...terms,
      force: true,
    });
    expect(summary(plan).work).toEqual(['a', 'b']);
  });

  it('a slot another delivery counted skips its due targets unrecorded, unless claims decide', () => {
    const selection = selectTargets(config(), ['a']);
    const settings = config().settings;
    expect(summary(planCycle(selection, settings, 1, { ...terms, counted: false }))).toEqual({
      settled: [['a', 'skipped', 'cycle 1 was already run for this slot', false]],
      work: [],
    });
    const claimed = planCycle(selection, settings, 1, { ...terms, counted: false, claims: true });
    expect(summary(claimed)).toEqual({ settled: [], work: ['a'] });
  });

  it('settings.enabled false pauses every target', () => {
    const plan = planCycle(
      selectTargets(config({ enabled: false })),
      config({ enabled: false }).settings,
      1,
      terms,
    );
    expect(summary(plan).work).toEqual([]);
    expect(summary(plan).settled.slice(1)).toEqual(
      ['a', 'b', 'c'].map((name) => [name, 'skipped', 'paused: settings.enabled is false', true]),
    );
  });
});

describe('settledResult', () => {
  it('is a result with nothing sent: no replies, no messages, no time, the reason only when given', () => {
    expect(settledResult('a', 7, 'skipped', null)).toEqual({
      target: 'a',
      outcome: 'skipped',
      cycle: 7,
      durationMs: 0,
      replies: [],
      messages: 0,
      error: null,
    });
    expect(settledResult('a', 7, 'skipped', null, 'disabled').reason).toBe('disabled');
  });
});
