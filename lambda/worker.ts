/**
 * The worker side of fan-out (docs/fan-out.md): the same function, invoked by the SQS event source
 * mapping with a batch of work orders, one target each. It signals them exactly as a cycle would
 * (claim first, then the release signal), logs one line per target and flushes the metrics once,
 * and answers with a partial batch response (ReportBatchItemFailures) naming only the orders worth
 * another delivery:
 *
 * - an order that could not be read (it goes to the dead-letter queue after its last receive);
 * - a target not reached before this invocation's deadline, or whose claim could not be written:
 *   nothing was sent for it, and its claim is still free, so a redelivery signals it once.
 *
 * Each order handed back is made visible again within seconds (lambda/work-order-hand-back.ts),
 * not after the queue's visibility timeout, which is longer than an order lives.
 *
 * Every other order is done, whatever its outcome: a provider's refusal or a timeout is that
 * cycle's result, and the next cycle is the retry (as when the cycle works its targets itself).
 * An order still in the queue past its `expiresAt` is reported `temporary-failure`, not worked.
 *
 * An order is only a name (docs/security.md): anyone who may send to the queue, or invoke the
 * function with an SQS-shaped event, can write one. The worker reads the settings and each named
 * target from the deployed configuration itself (ConfigSource.lookup: SSM GetParameters), decides
 * again whether the target is due in the order's cycle, and refuses an order for a cycle the
 * counter has not reached or a target the configuration does not hold: such an order is handed
 * back, so that it ends in the dead-letter queue and its alarm fires. Nothing an order says can
 * send a session, a secret or mail anywhere the configuration does not.
 *
 * Each result's status is recorded as a cycle worked here would record it (not a `skipped`
 * duplicate: the delivery that signalled it did), and FailingTargets and StaleTargets are
 * published over the batch's targets: any failing target raises its worker's count, so the
 * alarms (Maximum over a period) see it whichever worker signalled it.
 */
import { setMaxListeners } from 'node:events';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { mailReceiverFor } from './mail-receiver';
import { dueDecision } from './core/due-targets';
import { asDequeueError, ConfigError, type DequeueError } from './core/errors';
import { decodeWorkOrder, type WorkOrder } from './core/fan-out';
import type { MemoryBudget } from './core/memory-budget';
import { outcomeOfError } from './core/outcome';
import type {
  ConfigSource,
  Credentials,
  CycleCounter,
  TargetLeases,
  LoadedConfig,
  MailReceiver,
  MailSink,
  WorkQueue,
} from './core/ports';
import type { MxResolver } from './core/precheck/mx-servers';
import type { TargetResult } from './core/result';
import type { Target } from './core/config';
import { workTargets } from './core/work-targets';
import { InvocationReport, type Observability } from './observability';
import { returnHandedBack } from './work-order-hand-back';
import { CycleStatuses, type HealthThresholds, type StatusStore } from './target-health';
import type { WorkQueueEvent } from './work-queue-event';

/** What the worker uses of the handler's adapters (HandlerDeps has them all; see lambda/handler.ts). */
export interface WorkerDeps {
  /** Where the worker reads the settings and the targets its orders name (never from the order). */
  readonly config: ConfigSource;
  readonly credentials: Credentials;
  readonly counter: CycleCounter;
  /** The queue the orders came from: orders handed back are made visible again through it. */
  readonly workQueue?: WorkQueue;
  /** Seconds before a handed-back order is visible again (default HAND_BACK_SECONDS; tests less). */
  readonly handBackSeconds?: number;
  readonly leases?: TargetLeases;
  readonly receiver?: MailReceiver;
  readonly mailStore?: MailSink;
  readonly mailMemory?: MemoryBudget;
  readonly observability: Observability;
  readonly status?: StatusStore;
  readonly health?: HealthThresholds;
  readonly safetyMarginMs?: number;
  readonly now?: () => number;
  readonly tlsCa?: string;
  /** MX lookups for `"precheck": "mx"`. */
  readonly resolveMx?: MxResolver;
  /** Added to a port-25 timeout (a precheck's, a relay's) outside a VPC. */
  readonly port25Hint?: string;
}

/** The part of the Lambda context the worker uses. */
export type InvocationContext = Pick<Context, 'getRemainingTimeInMillis'> & Partial<Context>;

export type WorkQueueHandler = (
  event: WorkQueueEvent,
  context?: InvocationContext,
) => Promise<SQSBatchResponse>;

/** The handler's own figures (lambda/handler.ts): time kept back for reporting, listeners on the signal. */
const DEFAULT_SAFETY_MARGIN_MS = 5_000;
const SIGNAL_LISTENERS = 1_000;

/** A counter whose claims are skipped: orders of a forced run signal whatever was signalled. */
const noClaims = (counter: CycleCounter): CycleCounter => ({
  count: (slot, signal) => counter.count(slot, signal),
  peek: (signal) => counter.peek(signal),
});

export function createWorker(deps: WorkerDeps): WorkQueueHandler {
  const now = deps.now ?? Date.now;
  const { logger } = deps.observability;

  return async function work(event, context) {
    const started = now();
    if (context?.awsRequestId) logger.addContext(context as Context);
    const deadline = context
      ? started +
        context.getRemainingTimeInMillis() -
        (deps.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS)
      : undefined;
    const signal =
      deadline === undefined ? undefined : AbortSignal.timeout(Math.max(0, deadline - started));
    // As in the handler: every claim, secret read and status write in flight listens on it.
    if (signal) setMaxListeners(SIGNAL_LISTENERS, signal);
    logger.info('work orders received', {
      orders: event.Records.length,
      deadline: deadline === undefined ? null : new Date(deadline).toISOString(),
    });

    const report = new InvocationReport(deps.observability);
    const statuses = deps.status ? new CycleStatuses(deps.status) : undefined;
    const onStatusError = (target: string, error: DequeueError) =>
      logger.warn('target status not recorded', { target, error: error.message });
    const handBack = new Set<string>();
    const results: TargetResult[] = [];
    const recording: Promise<unknown>[] = [];
    const record = (result: TargetResult): void => {
      results.push(result);
      report.target(result);
      // A skipped duplicate is the signalling delivery's to record; a failed precheck is ours.
      if (statuses && (result.outcome !== 'skipped' || result.precheck)) {
        recording.push(
          statuses
            .record(result, now(), signal)
            .catch((e: unknown) => onStatusError(result.target, asDequeueError(e))),
        );
      }
    };

    // Orders read, the expired reported, duplicates settled.
    const orders: { messageId: string; order: WorkOrder }[] = [];
    for (const r of event.Records) {
      try {
        orders.push({
          messageId: r.messageId,
          order: decodeWorkOrder(r.body, `work order ${r.messageId}`),
        });
      } catch (e) {
        logger.error('unreadable work order', {
          messageId: r.messageId,
          error: asDequeueError(e).message,
        });
        handBack.add(r.messageId);
      }
    }
    /** An order that this deployment did not write: handed back, it ends in the dead-letter queue. */
    const refuse = (messageId: string, order: WorkOrder, why: string): void => {
      logger.error('work order refused', { messageId, target: order.target, error: why });
      handBack.add(messageId);
    };
    const live: { messageId: string; order: WorkOrder }[] = [];
    const seen = new Set<string>();
    for (const item of orders) {
      const { order } = item;
      if (now() > order.expiresAt) {
        record({
          target: order.target,
          outcome: 'temporary-failure',
          cycle: order.cycle,
          durationMs: 0,
          replies: [],
          messages: 0,
          error: `not signalled: its work order waited in the queue past ${new Date(order.expiresAt).toISOString()}`,
          reason: 'expired in the work queue before a worker reached it; tried again next cycle',
        });
        continue;
      }
      // The same target twice in one batch (a duplicate delivery): work it once, settle both.
      const key = JSON.stringify([order.cycle, order.claim, order.target]);
      if (seen.has(key)) {
        record({
          target: order.target,
          outcome: 'skipped',
          cycle: order.cycle,
          durationMs: 0,
          replies: [],
          messages: 0,
          error: null,
          reason: `already signalled in cycle ${order.cycle}`,
        });
        continue;
      }
      seen.add(key);
      live.push(item);
    }

    /** Nothing could be decided for the live orders: each is reported and handed back, untried. */
    const untried = (error: DequeueError, what: string): void => {
      for (const { messageId, order } of live) {
        record({
          target: order.target,
          outcome: outcomeOfError(error),
          cycle: order.cycle,
          durationMs: 0,
          replies: [],
          messages: 0,
          error: `not signalled: ${what}: ${error.message}`,
        });
        handBack.add(messageId);
      }
      live.length = 0;
    };

    // The orders' claim on the counter: a cycle not yet counted was never queued by a cycle (a
    // claim taken for it would make that cycle skip the target when it comes).
    let config: LoadedConfig | undefined;
    if (live.length) {
      try {
        const counted = await deps.counter.peek(signal);
        for (const item of live.filter(({ order }) => order.cycle > counted)) {
          refuse(
            item.messageId,
            item.order,
            `its cycle ${item.order.cycle} has not been counted (the counter is at ${counted}): no cycle of this deployment queued it`,
          );
          live.splice(live.indexOf(item), 1);
        }
      } catch (e) {
        untried(asDequeueError(e), 'the cycle counter could not be read');
      }
    }
    if (live.length) {
      try {
        if (!deps.config.lookup)
          throw new ConfigError(
            'configuration',
            '',
            'this configuration source cannot be read target by target, so no work order can be worked',
          );
        config = await deps.config.lookup(
          live.map(({ order }) => ({ name: order.target, location: order.parameter })),
          signal,
        );
      } catch (e) {
        untried(asDequeueError(e), 'the configuration could not be read');
      }
    }

    const work: { messageId: string; order: WorkOrder; target: Target }[] = [];
    if (config) {
      const byName = new Map(config.targets.map((t) => [t.name, t]));
      const invalid = new Map(config.invalid.map((t) => [t.name, t.error]));
      for (const { messageId, order } of live) {
        const location = config.locations?.[order.target];
        // The target as the configuration keeps it, and only where the configuration keeps it.
        const here = location !== undefined && (order.parameter ?? location) === location;
        const target = here ? byName.get(order.target) : undefined;
        const error = here ? invalid.get(order.target) : undefined;
        if (!target) {
          // Not in the configuration at all, or not where the order says: no status is written
          // for a name that may be anyone's invention.
          if (!error) {
            const why = (config.unknown ?? []).find(
              (u) =>
                u.name === order.target &&
                (order.parameter === undefined || u.error.where === order.parameter),
            );
            refuse(messageId, order, why?.error.message ?? 'no such target in the configuration');
          } else
            record({
              target: order.target,
              outcome: 'config-error',
              cycle: order.cycle,
              durationMs: 0,
              replies: [],
              messages: 0,
              error: error.message,
            });
          continue;
        }
        const decision = dueDecision(target, config.settings, order.cycle, !order.claim);
        if (!decision.due) {
          record({
            target: order.target,
            outcome: 'skipped',
            cycle: order.cycle,
            durationMs: 0,
            replies: [],
            messages: 0,
            error: null,
            reason: decision.reason,
          });
          continue;
        }
        work.push({ messageId, order, target });
      }
    }
    // Grouped by what the orders share: the cycle and whether they claim.
    const groups = new Map<string, { order: WorkOrder; items: typeof work }>();
    for (const item of work) {
      const key = JSON.stringify([item.order.cycle, item.order.claim]);
      const group = groups.get(key) ?? { order: item.order, items: [] };
      group.items.push(item);
      groups.set(key, group);
    }
    const settings = config?.settings;

    try {
      await Promise.all(
        [...groups.values()].map(async ({ order, items }) => {
          const targets = items.map((i) => i.target);
          const messageIds = new Map(items.map((i) => [i.target.name, i.messageId]));
          const { cycle } = order;
          await workTargets(
            targets,
            // An order that claims nothing comes from a forced run (fan-out.ts).
            { cycle, settings: settings!, force: !order.claim, deadline, signal },
            {
              credentials: deps.credentials,
              counter: order.claim ? deps.counter : noClaims(deps.counter),
              leases: deps.leases,
              receiver:
                deps.receiver ??
                mailReceiverFor(deps.mailStore, settings!, deps.tlsCa, deps.mailMemory, targets),
              helloName: settings!.helloName,
              tlsCa: deps.tlsCa,
              now: deps.now,
              resolveMx: deps.resolveMx,
              port25Hint: deps.port25Hint,
            },
            (result, untried) => {
              record(result);
              if (untried) handBack.add(messageIds.get(result.target)!);
            },
          );
        }),
      );
      await Promise.all(recording);
      if (statuses && deps.health) {
        const names = [
          ...new Set(
            results.filter((r) => r.outcome !== 'skipped' || r.precheck).map((r) => r.target),
          ),
        ];
        try {
          report.targetHealth(
            await statuses.health(names, deps.health, now(), AbortSignal.timeout(1_500)),
          );
        } catch (e) {
          logger.warn('failing and stale targets not counted in this batch', {
            error: asDequeueError(e).message,
          });
        }
      }
    } finally {
      report.finish(
        { cycle: orders[0]?.order.cycle ?? 0, results },
        {
          kind: 'worker',
          orders: event.Records.length,
          handedBack: handBack.size,
          durationMs: now() - started,
        },
      );
    }
    await returnHandedBack(event.Records, handBack, deps);
    return { batchItemFailures: [...handBack].map((itemIdentifier) => ({ itemIdentifier })) };
  };
}
