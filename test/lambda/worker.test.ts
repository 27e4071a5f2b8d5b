/**
 * The worker's partial batch response: only the orders worth another delivery are named (an
 * unreadable one; a target not reached before the deadline, nothing sent and no claim taken);
 * every other order is settled, whatever its outcome, and every one is logged. Each order handed
 * back is made visible again soon through the work queue (on SQS: test/lambda/hand-back.test.ts).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { encodeWorkOrder, workOrderFor } from '../../lambda/core/fan-out';
import type {
  ConfigSource,
  CycleCounter,
  HandedBackOrder,
  TargetReference,
  WorkQueue,
} from '../../lambda/core/ports';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import { NOT_REACHED } from '../../lambda/core/work-targets';
import { createObservability } from '../../lambda/observability';
import { isWorkQueueEvent } from '../../lambda/work-queue-event';
import { createWorker } from '../../lambda/worker';
import { HAND_BACK_SECONDS } from '../../lambda/work-order-hand-back';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { CapturedOutput, contextWith } from './aws-world';

let provider: ScriptedProvider;
let output: CapturedOutput;
beforeAll(async () => {
  provider = await new ScriptedProvider({
    extensions: ['ETRN'],
    etrn: { 'refused.test': '459 not allowed' },
  }).start();
});
afterAll(() => provider.stop());
beforeEach(() => {
  output = new CapturedOutput();
  provider.connections.length = 0;
});
afterEach(() => output.restore());

const settings = parseSettings({ concurrency: 1 }, 'test');
const target = (name: string, domain = `${name}.test`) =>
  parseTarget(
    {
      name,
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      timeoutSeconds: 5,
      command: `ETRN ${domain}`,
    },
    'test',
  );
/** Made once the provider listens (the targets carry its port). */
const configured = () => [
  target('ok'),
  target('refused', 'refused.test'),
  target('stale'),
  target('first'),
  target('second'),
  target('third'),
  target('forced'),
  target('done'),
];
/** The deployed configuration as SSM would answer a worker's lookup. */
const config: ConfigSource = {
  load: async () => ({ settings, targets: configured(), invalid: [] }),
  lookup: async (refs: readonly TargetReference[]) => ({
    settings,
    targets: configured().filter((t) => refs.some((r) => r.name === t.name)),
    invalid: [],
    locations: Object.fromEntries(configured().map((t) => [t.name, `/dequeue/targets/${t.name}`])),
    unknown: refs
      .filter((r) => !configured().some((t) => t.name === r.name))
      .map((r) => ({
        name: r.name,
        error: new ConfigError(`/dequeue/targets/${r.name}`, '', 'does not exist'),
      })),
  }),
};
const record = (id: string, body: string) => ({
  messageId: id,
  body,
  eventSource: 'aws:sqs',
  receiptHandle: `rh-${id}`,
});
const order = (name: string, over: { claim?: boolean; now?: number; domain?: string } = {}) =>
  encodeWorkOrder(
    workOrderFor(target(name, over.domain), {
      cycle: 3,
      parameter: `/dequeue/targets/${name}`,
      claim: over.claim ?? true,
      settings,
      now: over.now ?? Date.now(),
    }),
  );

function claims(): CycleCounter & { taken: string[] } {
  const taken: string[] = [];
  return {
    taken,
    peek: async () => 3,
    count: async () => ({ cycle: 3, counted: false }),
    claim: async (cycle, name) =>
      taken.includes(`${cycle}#${name}`) ? false : (taken.push(`${cycle}#${name}`), true),
  };
}
/** A work queue that records what the worker hands back; `refuse` names receipts SQS refuses. */
function queueOfHandBacks(refuse: ReadonlySet<string> = new Set()) {
  const handedBack: { orders: readonly HandedBackOrder[]; seconds: number }[] = [];
  const queue: WorkQueue = {
    send: async () => [],
    handBack: async (orders, seconds) => {
      handedBack.push({ orders, seconds });
      return orders
        .filter((o) => refuse.has(o.receiptHandle))
        .map((o) => ({
          messageId: o.messageId,
          error: new DequeueError('temporary', 'SQS did not change its visibility: throttled'),
        }));
    },
  };
  return { queue, handedBack };
}
const worker = (counter: CycleCounter, over: { now?: () => number; workQueue?: WorkQueue } = {}) =>
  createWorker({
    config,
    credentials: {
      get: async () => {
        throw new Error('no secrets');
      },
    },
    counter,
    observability: createObservability({}),
    safetyMarginMs: 1_000,
    ...over,
  });

describe('the worker', () => {
  it('settles signalled, refused and expired orders, hands back only the unreadable one', async () => {
    const counter = claims();
    const { queue, handedBack } = queueOfHandBacks();
    const response = await worker(counter, { workQueue: queue })(
      {
        Records: [
          record('m1', order('ok')),
          record('m2', order('refused', { domain: 'refused.test' })),
          record('m3', order('stale', { now: Date.now() - 2 * 3600_000 })),
          record('m4', '{"v": 99}'),
        ],
      },
      contextWith(60_000),
    );
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm4' }] });
    // Visible again in seconds, not after the queue's visibility timeout: only the one handed back.
    expect(handedBack).toEqual([
      { orders: [{ messageId: 'm4', receiptHandle: 'rh-m4' }], seconds: HAND_BACK_SECONDS },
    ]);
    expect(output.targetLines.map((l) => [l.target, l.outcome])).toEqual(
      expect.arrayContaining([
        ['ok', 'signalled'],
        ['refused', 'permanent-failure'],
        ['stale', 'temporary-failure'],
      ]),
    );
    expect(output.targetLines.find((l) => l.target === 'stale')!.reason).toMatch(
      /^expired in the work queue/,
    );
    expect(output.records.find((r) => r.message === 'unreadable work order')).toMatchObject({
      messageId: 'm4',
    });
    expect(counter.taken.sort()).toEqual(['3#ok', '3#refused']);
    expect(provider.connections).toHaveLength(2);
  });

  it('hands back the targets it had no time for: nothing sent, no claim taken', async () => {
    const counter = claims();
    // The clock jumps past the deadline once the first target has started.
    let offset = 0;
    const now = () => Date.now() + offset;
    const jumpy = {
      ...counter,
      claim: async (cycle: number, name: string) => {
        offset += 3_600_000;
        return counter.claim!(cycle, name);
      },
    };
    // SQS refuses to change any of them (throttled): the worker says so.
    const { queue, handedBack } = queueOfHandBacks(new Set(['rh-m1', 'rh-m2', 'rh-m3']));
    const response = await worker(jumpy, { now, workQueue: queue })(
      {
        Records: [
          record('m1', order('first')),
          record('m2', order('second')),
          record('m3', order('third')),
        ],
      },
      contextWith(60_000),
    );
    expect(response.batchItemFailures).toHaveLength(2);
    const late = output.targetLines.filter((l) => l.reason === NOT_REACHED).map((l) => l.target);
    expect(late).toHaveLength(2);
    expect(counter.taken).toHaveLength(1);
    // Handed back past the deadline all the same; what SQS would not change is said.
    const back = response.batchItemFailures.map((f) => f.itemIdentifier).sort();
    expect(handedBack.flatMap((h) => h.orders.map((o) => o.messageId)).sort()).toEqual(back);
    const said = output.records.filter(
      (r) => r.message === 'handed-back work orders come back late',
    );
    expect(said).toHaveLength(1);
    expect([...(said[0]!.messageIds as string[])].sort()).toEqual(back);
    expect(said[0]!.error).toMatch(/throttled/);
    // Only the first target may have reached its provider (the jump may cut even its session short).
    expect(provider.connections.length).toBeLessThanOrEqual(1);
  });

  it('an order of a forced run claims nothing; a signal already claimed is skipped', async () => {
    const counter = claims();
    counter.taken.push('3#done');
    const { queue, handedBack } = queueOfHandBacks();
    const response = await worker(counter, { workQueue: queue })(
      { Records: [record('m1', order('forced', { claim: false })), record('m2', order('done'))] },
      contextWith(60_000),
    );
    expect(response.batchItemFailures).toEqual([]);
    expect(handedBack).toEqual([]);
    expect(counter.taken).toEqual(['3#done']);
    expect(output.targetLines.map((l) => [l.target, l.outcome, l.reason ?? null])).toEqual(
      expect.arrayContaining([
        ['forced', 'signalled', null],
        ['done', 'skipped', 'already signalled in cycle 3'],
      ]),
    );
  });

  it("recognises the event source mapping's events and nothing else", () => {
    expect(isWorkQueueEvent({ Records: [record('m', '{}')] })).toBe(true);
    expect(isWorkQueueEvent({})).toBe(false);
    expect(isWorkQueueEvent({ source: 'schedule' })).toBe(false);
    expect(isWorkQueueEvent({ Records: [{ eventSource: 'aws:s3' }] })).toBe(false);
  });
});
