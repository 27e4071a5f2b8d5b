/**
 * The deployed bundle's runs as deployed-bundle.test.ts makes them: scheduled deliveries, each in
 * a fresh process (a slot, its retry, the next slot; a refused event when the template has an
 * on-failure destination; with a work queue, a slot that fans out), each followed by the work
 * queue delivered to the function as Lambda's event source mapping would; and a message on the
 * queue that no cycle wrote. Each run keeps its invocation and every AWS call made with the role,
 * Lambda's own included, for the IAM audit.
 */
import { randomUUID } from 'node:crypto';
import type { Invocation } from '../../peers/lambda-invocation';
import { MOTO_REGION } from '../servers/moto-server';
import type { AwsCall } from './aws-calls';
import type { Deployment } from './deployment';
import { failureDestinationCall, logDeliveryCall } from './platform-calls';
import { deleteMessages, type QueueMessage, sendMessages } from './queue-poller';
import { scheduledEventFrom, slotTime } from './schedule-input';

/** A delivery whose event the function refuses: the cycle fails, Lambda records it. */
export const REFUSED_EVENT = 'a malformed event (the cycle fails)';
/** A message on the work queue that no cycle wrote: the worker hands it back. */
export const HANDED_BACK = 'a foreign work order (handed back)';
/** Work-queue batches delivered after one scheduled run at most (a loop that never empties the queue fails). */
const MAX_WORKER_BATCHES = 20;

export interface Run {
  readonly name: string;
  /** The scheduled delivery it belongs to (a worker batch names the delivery that queued it). */
  readonly delivery: string;
  readonly event: any;
  readonly invocation: Invocation;
  readonly calls: AwsCall[];
  /** ETRN commands the provider had received once this run ended. */
  readonly etrnSignals: number;
  /** For a worker batch: the message ids it reported as failed. */
  readonly failed?: readonly string[];
}

/** What the runs need of the test: its providers' state and its timing notes. */
export interface RunBench {
  readonly deployment: Deployment;
  /** Resolves once the ATRN providers are done with the run's sessions. */
  readonly idle: () => Promise<unknown>;
  /** ETRN commands the provider has received so far. */
  readonly etrnSignals: () => number;
  readonly timed: <T>(what: string, work: Promise<T>) => Promise<T>;
  /** Where the time went (printed, never asserted). */
  readonly timings: string[];
}

/** Lambda's log delivery after an invocation, made with the function's role. */
function logDeliveryOf(deployment: Deployment): () => AwsCall {
  return () =>
    logDeliveryCall(deployment.logGroupArn, MOTO_REGION, `2026/01/01/[$LATEST]${randomUUID()}`);
}

/** The scheduled deliveries, and after each the worker batches of the work queue (if any). */
export async function scheduledRuns(bench: RunBench): Promise<Run[]> {
  const { deployment, idle, etrnSignals, timed, timings } = bench;
  const { proxy, resolver, scheduled, sources } = deployment;
  const runs: Run[] = [];
  const scheduleArn = resolver.physicalOf(scheduled.scheduleId).attributes.Arn!;
  const input = resolver.string(scheduled.input);
  const slot = slotTime(Date.now(), 15);
  const later = (n: number) => slotTime(Date.parse(slot) + n * 15 * 60_000, 15);
  // Lambda's own calls with the role: the log after every invocation, and the on-failure
  // destination (if the template gives one) for an asynchronous invocation that failed.
  const { failureDestination } = deployment;
  const logDelivery = logDeliveryOf(deployment);
  const deliveries: {
    name: string;
    scheduledTime: string;
    attemptNumber: number;
    settings?: object;
    /** Instead of the schedule's event: one the function refuses (the cycle fails). */
    event?: unknown;
  }[] = [
    { name: 'first delivery', scheduledTime: slot, attemptNumber: 1 },
    { name: 'retry of the same slot', scheduledTime: slot, attemptNumber: 2 },
    { name: 'next slot', scheduledTime: later(1), attemptNumber: 1 },
  ];
  if (failureDestination) {
    deliveries.push({
      name: REFUSED_EVENT,
      scheduledTime: later(2),
      attemptNumber: 1,
      event: [],
    });
  }
  if (sources.length) {
    deliveries.push({
      name: 'fanned-out slot',
      scheduledTime: later(2),
      attemptNumber: 1,
      settings: {
        helloName: 'mx.customer.test',
        fanOut: { maxTargetsPerInvocation: 1, maxAtrnPerInvocation: 0 },
      },
    });
  }
  const recorded = deployment.recorded;
  proxy.clear();
  for (const d of deliveries) {
    if (d.settings) await deployment.putSettings(d.settings);
    proxy.clear();
    const event =
      d.event ??
      scheduledEventFrom(input, {
        scheduleArn,
        scheduledTime: d.scheduledTime,
        executionId: randomUUID(),
        attemptNumber: d.attemptNumber,
      });
    const invocation = await timed(d.name, deployment.invoke(event));
    await idle();
    runs.push({
      name: d.name,
      delivery: d.name,
      event,
      invocation,
      calls: [
        ...recorded(),
        logDelivery(),
        ...(invocation.outcome.error && failureDestination
          ? [failureDestinationCall(failureDestination, MOTO_REGION)]
          : []),
      ],
      etrnSignals: etrnSignals(),
    });
    for (const source of sources) {
      for (let batch = 1; ; batch++) {
        const started = performance.now();
        const work = await deployment.deliverBatch(source);
        if (!work) break;
        timings.push(
          `${d.name}: worker batch ${batch} ${Math.round(performance.now() - started)} ms`,
        );
        if (batch > MAX_WORKER_BATCHES)
          throw new Error(
            `${d.name}: the work queue still holds messages after ${MAX_WORKER_BATCHES} batches`,
          );
        await idle();
        runs.push({
          name: `${d.name}: worker batch ${batch}`,
          delivery: d.name,
          event: work.event,
          invocation: work.invocation,
          calls: [work.poller, ...recorded(), logDelivery()],
          etrnSignals: etrnSignals(),
          failed: work.failed,
        });
        // A failed message would come back after its visibility timeout: the test reports it instead.
        if (work.failed.length) break;
      }
    }
  }
  return runs;
}

/**
 * A message no cycle wrote: the worker refuses it, hands it back and makes it visible again soon
 * (ChangeMessageVisibility through the proxy, checked against the role). It is then removed, so
 * that no later batch sees it. Null without a work queue.
 */
export async function foreignOrderRun(bench: RunBench): Promise<Run | null> {
  const { deployment, etrnSignals, timed } = bench;
  const { moto, proxy, resolver, sources } = deployment;
  const recorded = deployment.recorded;
  const logDelivery = logDeliveryOf(deployment);
  if (!sources.length) return null;
  const source = sources[0]!;
  const queueUrl = resolver.physicalOf(source.queueId).ref;
  await sendMessages(moto.clientConfig, queueUrl, ['{"not": "a work order"}']);
  proxy.clear();
  const work = await timed(HANDED_BACK, deployment.deliverBatch(source));
  if (!work) throw new Error(`${HANDED_BACK}: the work queue delivered nothing`);
  const run: Run = {
    name: `${HANDED_BACK}: worker batch 1`,
    delivery: HANDED_BACK,
    event: work.event,
    invocation: work.invocation,
    calls: [work.poller, ...recorded(), logDelivery()],
    etrnSignals: etrnSignals(),
    failed: work.failed,
  };
  await deleteMessages(
    moto.clientConfig,
    queueUrl,
    (work.event as { Records: { receiptHandle: string }[] }).Records.map(
      (r) => ({ ReceiptHandle: r.receiptHandle }) as QueueMessage,
    ),
  );
  return run;
}
