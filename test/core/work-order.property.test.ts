/**
 * A work order from a hostile sender (anyone allowed to send to the queue or invoke the function):
 * whatever the body, decodeWorkOrder either refuses it as a config error naming the message, or
 * returns an order that holds only a valid target name, a parameter name of SSM's alphabet, and
 * numbers: nothing of a host, a secret, a relay or settings survives, however it was nested.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { TARGET_NAME } from '../../lambda/core/config';
import { ConfigError } from '../../lambda/core/errors';
import { decodeWorkOrder } from '../../lambda/core/fan-out';
import { checkProperty } from '../support/fuzz';

const hostile = fc.oneof(
  fc.string(),
  fc.constantFrom('attacker.example', '127.0.0.1', 'dequeue/isp', '\r\nMAIL FROM:<x>', ''),
);
const targetLike = fc.record(
  {
    name: fc.oneof(fc.constantFrom('isp', 'odmr', 'a'.repeat(65), 'isp\r\n'), fc.string()),
    host: hostile,
    port: fc.integer(),
    auth: fc.record({ secretId: hostile }),
    command: hostile,
  },
  { requiredKeys: [] },
);
/** A well-formed order of either version with hostile fields mixed in. */
const nearlyValid = fc
  .record({
    v: fc.constantFrom(1, 2),
    cycle: fc.nat(),
    claim: fc.boolean(),
    queuedAt: fc.constant('2026-03-01T10:00:00Z'),
    expiresAt: fc.constant('2026-03-01T11:00:00Z'),
    name: fc.constantFrom('isp', 'odmr', 'isp\r\n', 'a'.repeat(65)),
    extra: targetLike,
    settings: fc.record({ mail: fc.record({ relay: fc.record({ host: hostile }) }) }),
  })
  .map(({ name, extra, ...o }) =>
    JSON.stringify(
      o.v === 1
        ? { ...o, target: { ...extra, name } }
        : {
            v: o.v,
            cycle: o.cycle,
            claim: o.claim,
            queuedAt: o.queuedAt,
            expiresAt: o.expiresAt,
            target: name,
          },
    ),
  );
const body = fc.oneof(
  nearlyValid,
  fc.jsonValue().map((j) => JSON.stringify(j)),
  fc.string(),
  fc
    .record(
      {
        v: fc.oneof(fc.constantFrom(1, 2, 3, '2'), fc.jsonValue()),
        cycle: fc.oneof(fc.nat(), fc.double(), fc.string()),
        claim: fc.oneof(fc.boolean(), fc.jsonValue()),
        queuedAt: fc.oneof(
          fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'x' : d.toISOString())),
          hostile,
        ),
        expiresAt: fc.oneof(
          fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'x' : d.toISOString())),
          hostile,
        ),
        target: fc.oneof(targetLike, hostile),
        parameter: fc.oneof(fc.constantFrom('/dequeue/targets/isp', '/x/../isp'), hostile),
        settings: fc.record({ mail: fc.record({ relay: fc.record({ host: hostile }) }) }),
        host: hostile,
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o)),
);

it('a hostile work order is refused, or carries nothing but a name, a parameter name and numbers', async () => {
  let decoded = 0;
  await checkProperty(
    'work order from a hostile sender',
    fc.property(body, (text) => {
      let order;
      try {
        order = decodeWorkOrder(text, 'work order m');
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as Error).message.startsWith('work order m: ')).toBe(true);
        return;
      }
      expect(TARGET_NAME.test(order.target)).toBe(true);
      expect(Object.keys(order).sort()).toEqual(
        expect.arrayContaining(['claim', 'cycle', 'expiresAt', 'queuedAt', 'target']),
      );
      for (const key of Object.keys(order))
        expect([
          'slot',
          'cycle',
          'claim',
          'target',
          'parameter',
          'queuedAt',
          'expiresAt',
        ]).toContain(key);
      if (order.parameter !== undefined) expect(order.parameter).toMatch(/^\/[A-Za-z0-9_.\-/]+$/);
      expect(Number.isInteger(order.cycle)).toBe(true);
      expect(Number.isFinite(order.expiresAt) && Number.isFinite(order.queuedAt)).toBe(true);
      decoded++;
    }),
    { ci: 300 },
  );
  // The generator reaches the decoder's accepting paths, not only its refusals.
  expect(decoded).toBeGreaterThan(0);
});
