/**
 * The fan-out queue (docs/fan-out.md): a cycle with more due targets than one invocation should
 * take on sends one work order per target here, and the same function, invoked by an SQS event
 * source mapping, signals them in batches.
 *
 * SQS as AWS advises for a Lambda consumer
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html):
 * - visibility timeout six times the function's timeout, so a batch whose invocation is retried
 *   (throttled, or waiting for a free instance) does not reappear while it is still being worked;
 * - a dead-letter queue after 5 receives (AWS's advice for Lambda consumers: a batch may be
 *   returned a few times for throttling alone), with an alarm on the operator's topic each time
 *   an order arrives there: an order that fails again and again (unreadable, or never fits a
 *   deadline) is kept and said, not lost;
 * - partial batch responses (ReportBatchItemFailures): one target handed back does not replay
 *   the others of its batch; the worker makes what it hands back visible again in 30 s
 *   (ChangeMessageVisibility, lambda/work-order-hand-back.ts), since the visibility timeout is
 *   longer than an order lives;
 * - a bounded maximum concurrency on the mapping: providers are not hammered and the account's
 *   Lambda concurrency is left for everything else;
 * - an alarm when the oldest order has waited longer than one interval between cycles: the
 *   workers are not keeping up, or not running at all (a disabled mapping, no concurrency);
 * - batches no larger than one invocation can work before its deadline: the worker works
 *   `settings.concurrency` targets at once, so the default batch of 50 is 5 rounds of the default
 *   concurrency, 150 s if every target in it is dead; a worker hands back what it could not reach.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** AWS's guidance: the source queue's visibility timeout at least six times the function's. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;
/**
 * 50 orders a batch, 10 workers: with the default concurrency of 10 a batch is 5 rounds, 150 s
 * if every one of them is dead (30 s timeouts), well inside the function's timeout; 10,000
 * targets with 5% dead take about 10 minutes (bench/fanout.ts). Batches of 10 would be one round
 * each but wait for their slowest target every time: 22 minutes for the same cycle.
 */
export const DEFAULT_WORKER_BATCH_SIZE = 50;
export const DEFAULT_WORKER_MAX_CONCURRENCY = 10;
/** Batches larger than 10 need a batching window (an SQS event source mapping's rule). */
export const BATCHING_WINDOW = Duration.seconds(1);
export const DEFAULT_WORKER_MAX_RECEIVE_COUNT = 5;

export interface SignallerWorkQueueProps {
  /** The function that both sends the orders (a cycle) and works them (a worker). */
  readonly function: lambda.IFunction;
  /** The function's timeout: the visibility timeout is six times it. */
  readonly functionTimeout: Duration;
  /** Messages per worker invocation (1 to 100). */
  readonly batchSize: number;
  /** Worker invocations at once (2 to 1000). */
  readonly maxConcurrency: number;
  /** Receives before an order moves to the dead-letter queue (1 to 1000). */
  readonly maxReceiveCount: number;
  /** An order older than this raises the oldest-order alarm: the shortest time between two cycles. */
  readonly oldestOrderAge: Duration;
  /** Makes an alarm notify the operator's topic (on ALARM and on OK). */
  readonly notify: (alarm: cloudwatch.Alarm) => void;
}

export class SignallerWorkQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly mapping: lambda.EventSourceMapping;
  /** A work order has just arrived in the dead-letter queue. */
  readonly deadLetterAlarm: cloudwatch.Alarm;
  /** The oldest order has waited longer than one interval between cycles. */
  readonly oldestOrderAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: SignallerWorkQueueProps) {
    super(scope, id);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // No AwsSolutions-SQS3 finding to acknowledge: cdk-nag sees the work queue's redrive policy.

    this.queue = new sqs.Queue(this, 'Queue', {
      // SQS-managed keys: the function sends and receives without a KMS grant.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(
        props.functionTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR,
      ),
      // Orders expire (settings.fanOut.expireAfterSeconds, at most a day) and are then only
      // reported: a day of retention keeps every order until a worker has said so.
      retentionPeriod: Duration.days(1),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });

    // The mapping polls with the function's role: ReceiveMessage, DeleteMessage and
    // GetQueueAttributes are granted with the function's other permissions
    // (signaller-permissions.ts), with ChangeMessageVisibility for the worker's hand-backs;
    // nothing more (SqsEventSource would add GetQueueUrl, which neither the mapping nor the code
    // calls).
    this.mapping = new lambda.EventSourceMapping(this, 'Workers', {
      target: props.function,
      eventSourceArn: this.queue.queueArn,
      batchSize: props.batchSize,
      ...(props.batchSize > 10 ? { maxBatchingWindow: BATCHING_WINDOW } : {}),
      maxConcurrency: props.maxConcurrency,
      reportBatchItemFailures: true,
    });

    // Orders arrive in the dead-letter queue by redrive, which NumberOfMessagesSent does not
    // count: the alarm watches the increase of the queue's depth (missing points, an idle queue,
    // count as 0), so each new dead order notifies, however many already wait.
    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadWorkOrders', {
      alarmDescription:
        'A fan-out work order failed on every delivery and has just moved to the dead-letter queue: its target was not signalled for that cycle. The function log ("unreadable work order", "target result") says why.',
      metric: new cloudwatch.MathExpression({
        expression: 'DIFF(FILL(depth, 0))',
        usingMetrics: {
          depth: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
            statistic: cloudwatch.Stats.MAXIMUM,
          }),
        },
        period: Duration.minutes(5),
        label: 'dead work orders added',
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // Two periods: DIFF needs the one before to tell an arrival from orders already waiting.
      evaluationPeriods: 2,
      datapointsToAlarm: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    props.notify(this.deadLetterAlarm);

    this.oldestOrderAlarm = new cloudwatch.Alarm(this, 'OldestWorkOrder', {
      alarmDescription: `A fan-out work order has waited in the queue for more than ${props.oldestOrderAge.toHumanString()} (the shortest time between two cycles): the workers are not keeping up, or not running (the event source mapping disabled, no concurrency left). Its target has not been signalled.`,
      metric: this.queue.metricApproximateAgeOfOldestMessage({
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: props.oldestOrderAge.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    props.notify(this.oldestOrderAlarm);
  }
}
