/** When a cycle fans out, and the work order on the wire: validated again on the way in. */
import { describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { ConfigError } from '../../lambda/core/errors';
import {
  decodeWorkOrder,
  encodeWorkOrder,
  needsFanOut,
  workOrderFor,
} from '../../lambda/core/fan-out';

const etrn = (i: number) =>
  parseTarget({ name: `e${i}`, host: 'mx.example', command: `ETRN d${i}.test` }, 'test');
const atrn = (i: number) =>
  parseTarget(
    {
      name: `a${i}`,
      host: 'odmr.example',
      command: 'ATRN',
      mail: { domains: ['customer.test'] },
      auth: { secretId: 'dequeue/a' },
    },
    'test',
  );

describe('needsFanOut', () => {
  it('fans out past 100 due targets by default, or past 3 ATRN targets', () => {
    const settings = parseSettings({}, 'test');
    expect(
      needsFanOut(
        Array.from({ length: 100 }, (_, i) => etrn(i)),
        settings,
      ),
    ).toBe(false);
    expect(
      needsFanOut(
        Array.from({ length: 101 }, (_, i) => etrn(i)),
        settings,
      ),
    ).toBe(true);
    expect(needsFanOut([etrn(0), atrn(1), atrn(2), atrn(3)], settings)).toBe(false);
    expect(needsFanOut([atrn(1), atrn(2), atrn(3), atrn(4)], settings)).toBe(true);
  });

  it('follows settings.fanOut', () => {
    const settings = parseSettings(
      { fanOut: { maxTargetsPerInvocation: 2, maxAtrnPerInvocation: 0 } },
      'test',
    );
    expect(needsFanOut([etrn(0), etrn(1)], settings)).toBe(false);
    expect(needsFanOut([etrn(0), etrn(1), etrn(2)], settings)).toBe(true);
    expect(needsFanOut([atrn(0)], settings)).toBe(true);
  });

  it('refuses settings.fanOut values out of range, naming the field', () => {
    expect(() =>
      parseSettings({ fanOut: { maxTargetsPerInvocation: 0 } }, '/dequeue/settings'),
    ).toThrow('/dequeue/settings: fanOut.maxTargetsPerInvocation: must be at least 1');
    expect(() => parseSettings({ fanOut: { batch: 3 } }, '/dequeue/settings')).toThrow(ConfigError);
  });
});

describe('work orders', () => {
  const settings = parseSettings(
    { concurrency: 4, helloName: 'mx.customer.example', fanOut: { expireAfterSeconds: 600 } },
    'test',
  );
  const target = parseTarget(
    {
      name: 'isp',
      host: 'relay.isp.example',
      command: ['ETRN a.test', 'ETRN b.test'],
      auth: { secretId: 'dequeue/isp' },
      timeoutSeconds: 20,
    },
    'test',
  );

  it("round-trip: the worker gets the target's name and parameter, the cycle and slot, and the expiry from the settings", () => {
    const order = workOrderFor(target, {
      slot: 'arn:aws:scheduler:...#2026-03-01T10:00:00Z',
      cycle: 9,
      claim: true,
      settings,
      now: Date.parse('2026-03-01T10:00:01Z'),
      parameter: '/dequeue/targets/isp',
    });
    const back = decodeWorkOrder(encodeWorkOrder(order), 'work order m-1');
    expect(back).toEqual(order);
    expect(back.target).toBe('isp');
    expect(new Date(back.expiresAt).toISOString()).toBe('2026-03-01T10:10:01.000Z');
  });

  it('carries a name, never the target: no host, port, secret id, relay or settings', () => {
    const body = encodeWorkOrder(workOrderFor(target, { cycle: 1, claim: true, settings, now: 0 }));
    expect(Object.keys(JSON.parse(body)).sort()).toEqual(
      ['claim', 'cycle', 'expiresAt', 'queuedAt', 'target', 'v'].sort(),
    );
    expect(body).not.toMatch(/relay\.isp|dequeue\/isp|helloName|password|username/i);
  });

  it('a version 1 order (the whole target inside) is read for its name only', () => {
    const v1 = {
      v: 1,
      cycle: 4,
      claim: true,
      queuedAt: '2026-03-01T10:00:00Z',
      expiresAt: '2026-03-01T11:00:00Z',
      settings: { mail: { relay: { host: 'attacker.example' } } },
      target: { name: 'isp', host: 'attacker.example', auth: { secretId: 'dequeue/isp' } },
    };
    expect(decodeWorkOrder(JSON.stringify(v1), 'work order m-5')).toEqual({
      slot: undefined,
      cycle: 4,
      claim: true,
      target: 'isp',
      queuedAt: Date.parse('2026-03-01T10:00:00Z'),
      expiresAt: Date.parse('2026-03-01T11:00:00Z'),
    });
  });

  it('an order that is not one is a config error naming the message and the field', () => {
    expect(() => decodeWorkOrder('{"v":2}', 'work order m-2')).toThrow(/^work order m-2: cycle: /);
    expect(() => decodeWorkOrder('{"v":99}', 'work order m-6')).toThrow(
      /^work order m-6: v: must be a work order of version 2/,
    );
    expect(() => decodeWorkOrder('not json', 'work order m-3')).toThrow(
      'work order m-3: is not valid JSON',
    );
    const order = JSON.parse(
      encodeWorkOrder(workOrderFor(target, { cycle: 1, claim: true, settings, now: 0 })),
    );
    expect(() =>
      decodeWorkOrder(JSON.stringify({ ...order, target: 'isp\r\nMAIL' }), 'work order m-4'),
    ).toThrow(/^work order m-4: target: must be a target name/);
    expect(() =>
      decodeWorkOrder(JSON.stringify({ ...order, host: 'attacker.example' }), 'work order m-7'),
    ).toThrow(/^work order m-7: host: /);
  });
});
