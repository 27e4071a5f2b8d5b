/**
 * The shape of an invocation from the SQS event source mapping (docs/fan-out.md): what the
 * function reads of it, and how it tells one from a scheduled or manual event. The shape says
 * nothing of who sent it: anyone allowed to invoke the function can send one, which is why each
 * order in it is only a name the worker looks up itself (lambda/worker.ts, docs/security.md).
 */

/** The part of an SQS event record the worker reads. */
export interface WorkQueueRecord {
  readonly messageId: string;
  /** This receipt of the message (the mapping's events have it): what a hand-back changes. */
  readonly receiptHandle?: string;
  readonly body: string;
  readonly eventSource?: string;
}

export interface WorkQueueEvent {
  readonly Records: readonly WorkQueueRecord[];
}

/** An event from the SQS event source mapping (a scheduled or manual event has no `Records`). */
export function isWorkQueueEvent(event: unknown): event is WorkQueueEvent {
  if (typeof event !== 'object' || event === null || !('Records' in event)) return false;
  const records = (event as { Records: unknown }).Records;
  return (
    Array.isArray(records) &&
    records.every(
      (r: unknown) =>
        typeof r === 'object' &&
        r !== null &&
        (r as WorkQueueRecord).eventSource === 'aws:sqs' &&
        typeof (r as WorkQueueRecord).messageId === 'string' &&
        typeof (r as WorkQueueRecord).body === 'string',
    )
  );
}
