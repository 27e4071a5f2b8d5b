/**
 * The work queue on SQS (docs/fan-out.md): one message per target, sent with SendMessageBatch.
 *
 * - A batch holds at most 10 entries and at most 256 KiB of bodies together (the API's limits:
 *   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html);
 *   an order is a few hundred bytes (a name, not a target), but one larger than that alone would
 *   be refused with a plain reason, never sent.
 * - SendMessageBatch succeeds per entry: the entries in `Failed` that are not the sender's fault
 *   (throttling, an internal error) are sent again, a bounded number of rounds with a growing
 *   pause; what still fails is handed back as a refusal, never dropped silently.
 * - A few batches are in flight at once, so 10,000 orders take seconds, not a thousand round trips
 *   in a row; the whole send ends at the run's deadline with the abort signal.
 *
 * - A worker's hand-back (lambda/work-order-hand-back.ts) is ChangeMessageVisibilityBatch, 10
 *   receipts a call: the orders come back in seconds, not after the queue's visibility timeout.
 *
 * Loaded by the handler only when a cycle fans out or a worker hands orders back
 * (lambda/handler.ts): its SDK client is not compiled at every cold start of the function.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  SendMessageBatchCommand,
  SQSClient,
  type SendMessageBatchRequestEntry,
  type SQSClientConfig,
} from '@aws-sdk/client-sqs';
import { DequeueError } from '../core/errors';
import { encodeWorkOrder, type WorkOrder } from '../core/fan-out';
import type { HandBackFailure, HandedBackOrder, QueueRefusal, WorkQueue } from '../core/ports';
import { awsErrorKind, describeAwsError } from './aws-errors';

export const MAX_ENTRIES_PER_BATCH = 10;
export const MAX_BATCH_BYTES = 256 * 1024;
/** Rounds for entries SQS failed on its side (the first send included). */
export const MAX_SEND_ROUNDS = 4;
/** Batches in flight at once. */
export const BATCHES_IN_FLIGHT = 8;

export interface SqsWorkQueueOptions {
  readonly queueUrl: string;
  /** Pause before round n (1-based) of re-sending failed entries; default 100 ms x 2^(n-1), jittered. */
  readonly pause?: (round: number) => Promise<void>;
}

interface Entry {
  readonly target: string;
  readonly body: string;
  readonly bytes: number;
}

const backoff = (round: number) =>
  new Promise<void>((r) => setTimeout(r, 100 * 2 ** (round - 1) * (0.5 + Math.random() / 2)));

export class SqsWorkQueue implements WorkQueue {
  private readonly pause: (round: number) => Promise<void>;

  constructor(
    private readonly client: SQSClient,
    private readonly options: SqsWorkQueueOptions,
  ) {
    this.pause = options.pause ?? backoff;
  }

  async send(orders: readonly WorkOrder[], signal?: AbortSignal): Promise<readonly QueueRefusal[]> {
    const refusals: QueueRefusal[] = [];
    const entries: Entry[] = [];
    for (const order of orders) {
      const body = encodeWorkOrder(order);
      const bytes = Buffer.byteLength(body);
      if (bytes > MAX_BATCH_BYTES) {
        refusals.push({
          target: order.target,
          error: new DequeueError(
            'config',
            `its work order is ${bytes} bytes, more than an SQS message holds (${MAX_BATCH_BYTES})`,
          ),
        });
      } else {
        entries.push({ target: order.target, body, bytes });
      }
    }
    const batches = batchesOf(entries);
    let next = 0;
    const sender = async (): Promise<void> => {
      while (next < batches.length)
        refusals.push(...(await this.sendBatch(batches[next++]!, signal)));
    };
    await Promise.all(Array.from({ length: Math.min(BATCHES_IN_FLIGHT, batches.length) }, sender));
    return refusals;
  }

  async handBack(
    orders: readonly HandedBackOrder[],
    seconds: number,
    signal?: AbortSignal,
  ): Promise<readonly HandBackFailure[]> {
    const calls: Promise<HandBackFailure[]>[] = [];
    for (let i = 0; i < orders.length; i += MAX_ENTRIES_PER_BATCH) {
      const batch = orders.slice(i, i + MAX_ENTRIES_PER_BATCH);
      calls.push(this.changeVisibility(batch, seconds, signal));
    }
    return (await Promise.all(calls)).flat();
  }

  /** One ChangeMessageVisibilityBatch; resolves with the receipts it could not change. */
  private async changeVisibility(
    batch: readonly HandedBackOrder[],
    seconds: number,
    signal?: AbortSignal,
  ): Promise<HandBackFailure[]> {
    try {
      const out = await this.client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: batch.map((o, i) => ({
            Id: `h${i}`,
            ReceiptHandle: o.receiptHandle,
            VisibilityTimeout: seconds,
          })),
        }),
        { abortSignal: signal },
      );
      return (out.Failed ?? []).flatMap((f) => {
        const order = batch[Number((f.Id ?? '').slice(1))];
        if (!order || !f.Id?.startsWith('h')) return [];
        return [
          {
            messageId: order.messageId,
            error: new DequeueError(
              f.SenderFault ? 'config' : 'temporary',
              `SQS did not change its visibility: ${f.Code ?? 'error'}: ${f.Message ?? ''}`.trim(),
            ),
          },
        ];
      });
    } catch (e) {
      const error = new DequeueError(
        awsErrorKind(e),
        `SQS ChangeMessageVisibilityBatch failed: ${describeAwsError(e)}`,
        { cause: e },
      );
      return batch.map((o) => ({ messageId: o.messageId, error }));
    }
  }

  /** One batch, its failed entries re-sent; resolves with what could not be queued. */
  private async sendBatch(batch: readonly Entry[], signal?: AbortSignal): Promise<QueueRefusal[]> {
    let pending = batch.map((entry, i) => ({ id: `o${i}`, entry }));
    const refusals: QueueRefusal[] = [];
    for (let round = 1; pending.length > 0; round++) {
      if (round > 1) await this.pause(round - 1);
      const request: SendMessageBatchRequestEntry[] = pending.map(({ id, entry }) => ({
        Id: id,
        MessageBody: entry.body,
      }));
      let failed: { Id?: string; SenderFault?: boolean; Code?: string; Message?: string }[];
      try {
        const out = await this.client.send(
          new SendMessageBatchCommand({ QueueUrl: this.options.queueUrl, Entries: request }),
          { abortSignal: signal },
        );
        failed = out.Failed ?? [];
      } catch (e) {
        // The SDK has retried the call itself (or the deadline came): nothing of it is queued.
        const error = new DequeueError(
          awsErrorKind(e),
          `SQS SendMessageBatch failed: ${describeAwsError(e)}`,
          { cause: e },
        );
        return [...refusals, ...pending.map(({ entry }) => ({ target: entry.target, error }))];
      }
      const byId = new Map(pending.map((p) => [p.id, p]));
      const again: typeof pending = [];
      for (const f of failed) {
        const item = byId.get(f.Id ?? '');
        if (!item) continue;
        const error = new DequeueError(
          f.SenderFault ? 'config' : 'temporary',
          `SQS refused its work order: ${f.Code ?? 'error'}: ${f.Message ?? ''}`.trim(),
        );
        if (f.SenderFault || round >= MAX_SEND_ROUNDS || signal?.aborted)
          refusals.push({ target: item.entry.target, error });
        else again.push(item);
      }
      pending = again;
    }
    return refusals;
  }
}

/** Entries grouped in order into batches of at most 10 entries and 256 KiB. */
export function batchesOf<T extends { bytes: number }>(entries: readonly T[]): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const entry of entries) {
    if (current.length === MAX_ENTRIES_PER_BATCH || bytes + entry.bytes > MAX_BATCH_BYTES) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += entry.bytes;
  }
  if (current.length) batches.push(current);
  return batches;
}

/** The entry the handler imports lazily: the client with the handler's own settings. */
export function openSqsWorkQueue(
  clientOptions: SQSClientConfig,
  queueUrl: string,
): Required<WorkQueue> {
  return new SqsWorkQueue(new SQSClient(clientOptions), { queueUrl });
}
