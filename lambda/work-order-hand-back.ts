/**
 * Handed-back work orders come back soon (docs/fan-out.md, "The worker's partial batch
 * response"). An order named in `batchItemFailures` is only left undeleted by the event source
 * mapping: on its own it reappears after the queue's visibility timeout, six times the
 * function's timeout (90 minutes with the default 15), while an order expires an hour after it
 * was queued (settings.fanOut.expireAfterSeconds): it would only ever be reported expired. So the
 * worker itself makes each order it hands back visible again HAND_BACK_SECONDS from now
 * (SQS ChangeMessageVisibility on the receipt it was given, the way AWS suggests retrying a
 * Lambda consumer's failed messages sooner), and a worker picks it up well before it expires.
 *
 * What cannot be changed (no receipt handle in the record, no queue to ask, SQS refused) is
 * logged and left to the visibility timeout, as before: the order is never lost, only late.
 */
import { asDequeueError } from './core/errors';
import type { HandedBackOrder, WorkQueue } from './core/ports';
import type { Observability } from './observability';

/**
 * Seconds before a handed-back order is visible again: long enough that a throttled table or an
 * SSM read that failed has a moment to recover, and a dead-letter candidate (an unreadable or
 * refused order, 5 receives) reaches the dead-letter queue within minutes; far below the shortest
 * expiry (60 s is the least `expireAfterSeconds` allows, 3600 s the default).
 */
export const HAND_BACK_SECONDS = 30;

/** The bound on the hand-back call: it runs in the time kept back for reporting (5 s). */
export const HAND_BACK_TIMEOUT_MS = 2_000;

/** A received record as far as a hand-back needs it. */
export interface ReceivedOrder {
  readonly messageId: string;
  /** Absent in an event not built by the mapping (a direct invocation): nothing to change. */
  readonly receiptHandle?: string;
}

/**
 * Make the orders named in `handedBack` visible again `seconds` from now. Never rejects: what
 * could not be changed is logged (`handed-back work orders come back late`).
 */
export async function returnHandedBack(
  received: readonly ReceivedOrder[],
  handedBack: ReadonlySet<string>,
  deps: {
    /** The queue the orders came from (absent: nothing can be changed). */
    readonly workQueue?: WorkQueue;
    readonly observability: Observability;
    /** Default HAND_BACK_SECONDS. */
    readonly handBackSeconds?: number;
  },
): Promise<void> {
  if (handedBack.size === 0) return;
  const { logger } = deps.observability;
  const queue = deps.workQueue;
  const seconds = deps.handBackSeconds ?? HAND_BACK_SECONDS;
  const orders: HandedBackOrder[] = [];
  const seen = new Set<string>();
  for (const r of received) {
    if (!handedBack.has(r.messageId) || seen.has(r.messageId) || !r.receiptHandle) continue;
    seen.add(r.messageId);
    orders.push({ messageId: r.messageId, receiptHandle: r.receiptHandle });
  }
  const late = (messageIds: readonly string[], error: string): void =>
    logger.warn('handed-back work orders come back late', {
      messageIds,
      error,
      visibleAgain: "after the work queue's visibility timeout",
    });
  const without = [...handedBack].filter((id) => !seen.has(id));
  if (without.length) late(without, 'no receipt handle in the event');
  if (!orders.length) return;
  if (!queue?.handBack) {
    late(
      orders.map((o) => o.messageId),
      'this function has no work queue to ask (DEQUEUE_WORK_QUEUE_URL unset)',
    );
    return;
  }
  let failures: readonly { messageId: string; error: { message: string } }[];
  try {
    failures = await queue.handBack(orders, seconds, AbortSignal.timeout(HAND_BACK_TIMEOUT_MS));
  } catch (e) {
    const error = asDequeueError(e);
    failures = orders.map((o) => ({ messageId: o.messageId, error }));
  }
  const failed = new Set(failures.map((f) => f.messageId));
  const back = orders.filter((o) => !failed.has(o.messageId)).map((o) => o.messageId);
  if (back.length)
    logger.info('work orders handed back', { messageIds: back, visibleAgainInSeconds: seconds });
  if (failures.length)
    late(
      failures.map((f) => f.messageId),
      [...new Set(failures.map((f) => f.error.message))].join('; '),
    );
}
