/**
 * What tells the operator that mail is not being released: the function failing, a target failing
 * cycle after cycle or not signalled for too long (from the embedded metrics the handler writes
 * once per cycle), and silence: no cycle at all for twice the longest time between two cycles,
 * asynchronous invocations Lambda dropped, and scheduled cycles that never ran (the schedule's
 * dead-letter queue, which is also the function's on-failure destination). All of them notify one
 * SNS topic, whose policy lets CloudWatch publish for alarms of this account and region only.
 *
 * A single failed target pages nobody: providers answer `458 Already processing` or drop a
 * connection now and then, and the next cycle is the retry. The handler counts the targets whose
 * failures have lasted (`FailingTargets`) or whose last success is too old (`StaleTargets`) and
 * publishes the two counts once per cycle: one value each, not one metric per target (custom
 * metrics are billed per dimension value). Likewise the targets whose customer's own server has
 * failed its precheck for `serverDownAfterCycles` cycles (`ServerDownTargets`): the server down
 * for an hour is what an operator wants an email about.
 */
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { describeSeconds, type ScheduleIntervals } from './schedule-intervals';

/** The namespace of the metrics the handler writes (POWERTOOLS_METRICS_NAMESPACE). */
export const METRICS_NAMESPACE = 'Dequeue';

/** Failed targets of one cycle (temporary, permanent, config): graphed, not alarmed on. */
export const TARGET_FAILURES_METRIC = {
  namespace: METRICS_NAMESPACE,
  metricName: 'TargetFailures',
} as const;

/**
 * Per cycle: how many targets have failed `failingAfterCycles` cycles in a row or more
 * (consecutiveFailures >= the threshold). The failing alarm watches it.
 */
export const FAILING_TARGETS_METRIC = {
  namespace: METRICS_NAMESPACE,
  metricName: 'FailingTargets',
} as const;

/**
 * Per cycle: how many targets have not ended `signalled` or `no-mail` for longer than `staleAfter`.
 * The stale alarm watches it.
 */
export const STALE_TARGETS_METRIC = {
  namespace: METRICS_NAMESPACE,
  metricName: 'StaleTargets',
} as const;

/**
 * Per cycle: how many targets have found their customer's own server down (`precheck`)
 * `serverDownAfterCycles` checks in a row or more. The server-down alarm watches it.
 */
export const SERVER_DOWN_TARGETS_METRIC = {
  namespace: METRICS_NAMESPACE,
  metricName: 'ServerDownTargets',
} as const;

/**
 * One of the handler's metrics with the `service` dimension Powertools adds to every one
 * (POWERTOOLS_SERVICE_NAME): each deployment has its own value, so two stacks in one account and
 * region never read each other's targets.
 */
export function dequeueMetric(
  metric: { readonly namespace: string; readonly metricName: string },
  service: string,
  props: cloudwatch.MetricOptions = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    ...props,
    namespace: metric.namespace,
    metricName: metric.metricName,
    dimensionsMap: { ...props.dimensionsMap, service },
  });
}

/** Environment variables the handler reads the thresholds from. */
export const FAILING_AFTER_CYCLES_ENV = 'DEQUEUE_FAILING_AFTER_CYCLES';
export const STALE_AFTER_HOURS_ENV = 'DEQUEUE_STALE_AFTER_HOURS';
export const SERVER_DOWN_AFTER_CYCLES_ENV = 'DEQUEUE_SERVER_DOWN_AFTER_CYCLES';

/** CloudWatch evaluates an alarm over at most 7 days, and over at most 1 day with periods under an hour. */
export const MAX_ALARM_EVALUATION = Duration.days(7);

/**
 * Who may publish to the alarm topic and use its key: CloudWatch, for alarms of this account in
 * this region (the confused-deputy conditions AWS recommends for service principals).
 */
export function alarmSourceConditions(): Record<string, Record<string, string>> {
  return {
    StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
    ArnLike: {
      'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*`,
    },
  };
}

export interface SignallerAlarmsProps {
  /** The release-signalling function. */
  readonly function: lambda.IFunction;
  /** The schedule's dead-letter queue, also the function's on-failure destination. */
  readonly deadLetterQueue: sqs.IQueue;
  /** The `service` dimension of the handler's metrics (POWERTOOLS_SERVICE_NAME). */
  readonly service: string;
  /** How far apart the cycles are: the no-cycle alarm waits twice the longest interval. */
  readonly intervals: ScheduleIntervals;
  /** Consecutive failed cycles after which a target counts as failing (for the description). */
  readonly failingAfterCycles: number;
  /** Time without success after which a target counts as stale (for the description). */
  readonly staleAfter: Duration;
  /** Failed prechecks in a row after which a target's server counts as down (for the description). */
  readonly serverDownAfterCycles: number;
  /** The period the alarms evaluate. */
  readonly period: Duration;
  /** An address to subscribe to the topic; undefined: no subscription. */
  readonly email?: string;
  /** A topic to notify instead of creating one; undefined: an encrypted topic is created. */
  readonly topic?: sns.ITopic;
}

export class SignallerAlarms extends Construct {
  /** The topic every alarm notifies (on ALARM and on OK). */
  readonly topic: sns.ITopic;
  readonly functionErrors: cloudwatch.Alarm;
  /** Some target has failed `failingAfterCycles` cycles in a row. */
  readonly failingTargets: cloudwatch.Alarm;
  /** Some target has not been released (signalled or no-mail) for longer than `staleAfter`. */
  readonly staleTargets: cloudwatch.Alarm;
  /** Some target's own mail server has failed its precheck `serverDownAfterCycles` times in a row. */
  readonly serverDownTargets: cloudwatch.Alarm;
  /** A scheduled cycle never ran: Scheduler could not hand it over, or Lambda gave up on it. */
  readonly undeliveredInvocations: cloudwatch.Alarm;
  /** No invocation at all for twice the longest time between two cycles. */
  readonly noCycles: cloudwatch.Alarm;
  /** Lambda dropped asynchronous invocations (too old, throttled too long). */
  readonly droppedEvents: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: SignallerAlarmsProps) {
    super(scope, id);
    this.topic = props.topic ?? this.encryptedTopic();
    if (props.email !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    }

    this.functionErrors = new cloudwatch.Alarm(this, 'FunctionErrors', {
      alarmDescription: 'The dequeue function failed: a whole cycle did not run (see its log).',
      metric: props.function.metricErrors({
        period: props.period,
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const cycles = props.failingAfterCycles;
    this.failingTargets = this.targetCountAlarm(
      'FailingTargets',
      dequeueMetric(FAILING_TARGETS_METRIC, props.service, {
        statistic: cloudwatch.Stats.MAXIMUM,
        period: props.period,
      }),
      `A target has failed ${cycles} cycle${cycles === 1 ? '' : 's'} in a row or more (metric Dequeue/FailingTargets, service ${props.service}): mail may stay held at the provider. \`dequeue status --table\` shows which target, since when and why.`,
    );
    this.staleTargets = this.targetCountAlarm(
      'StaleTargets',
      dequeueMetric(STALE_TARGETS_METRIC, props.service, {
        statistic: cloudwatch.Stats.MAXIMUM,
        period: props.period,
      }),
      `A target has not been signalled successfully (signalled or no-mail) for more than ${props.staleAfter.toHumanString()} (metric Dequeue/StaleTargets, service ${props.service}). \`dequeue status --table\` shows its last success and last error.`,
    );

    const checks = props.serverDownAfterCycles;
    this.serverDownTargets = this.targetCountAlarm(
      'ServerDownTargets',
      dequeueMetric(SERVER_DOWN_TARGETS_METRIC, props.service, {
        statistic: cloudwatch.Stats.MAXIMUM,
        period: props.period,
      }),
      `A customer's own mail server has not answered the check before its release signal ${checks} cycle${checks === 1 ? '' : 's'} in a row or more (metric Dequeue/ServerDownTargets, service ${props.service}): the provider keeps the mail, and no ETRN is sent until the server answers. \`dequeue status --table\` shows which target, since when, and what the server did.`,
    );

    // Scheduler's deliveries that failed and Lambda's on-failure records both arrive with
    // SendMessage, which NumberOfMessagesSent counts: each new one notifies, however many already
    // wait (an alarm on the queue's depth would stay in ALARM for the 14 days they are kept).
    this.undeliveredInvocations = new cloudwatch.Alarm(this, 'UndeliveredInvocations', {
      alarmDescription:
        'A scheduled cycle never ran: EventBridge Scheduler could not invoke the dequeue function, or Lambda gave up on the invocation (too old, or the cycle failed). Each one waits in the dead-letter queue with the reason.',
      metric: props.deadLetterQueue.metricNumberOfMessagesSent({
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.noCycles = this.noCyclesAlarm(props);

    this.droppedEvents = new cloudwatch.Alarm(this, 'DroppedEvents', {
      alarmDescription:
        'Lambda dropped asynchronous invocations of the dequeue function without running them (older than the maximum event age, or throttled until then): those cycles did not run.',
      metric: props.function.metric('AsyncEventsDropped', {
        period: props.period,
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    for (const alarm of [
      this.functionErrors,
      this.failingTargets,
      this.staleTargets,
      this.serverDownTargets,
      this.undeliveredInvocations,
      this.noCycles,
      this.droppedEvents,
    ]) {
      this.notify(alarm);
    }
  }

  /** Notifies the topic when the alarm fires and when it clears. */
  notify(alarm: cloudwatch.Alarm): void {
    const action = new actions.SnsAction(this.topic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
  }

  /**
   * No invocation for twice the longest time between two cycles: the schedule disabled or
   * deleted, its role broken, the function throttled to nothing. A period without data is
   * breaching here: silence is what this alarm is for. Periods of the longest interval (at most a
   * day each), as many as make up twice it.
   */
  private noCyclesAlarm(props: SignallerAlarmsProps): cloudwatch.Alarm {
    const window = 2 * props.intervals.longestSeconds;
    const period = Math.min(Math.ceil(props.intervals.longestSeconds / 60) * 60, 86_400);
    const periods = Math.ceil(window / period);
    return new cloudwatch.Alarm(this, 'NoCycles', {
      alarmDescription: `The dequeue function has not been invoked for ${describeSeconds(periods * period)} (twice the longest time between two cycles): the schedule may be disabled or deleted, or every invocation throttled. No target is being signalled.`,
      metric: props.function.metricInvocations({
        period: Duration.seconds(period),
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: periods,
      datapointsToAlarm: periods,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
  }

  /**
   * Alarms on a count of targets the handler publishes once per cycle: any target in that state
   * (Maximum >= 1) raises it, a cycle that reports 0 clears it. A period without a cycle in it
   * (a schedule slower than the period, a late start) keeps the alarm as it was instead of
   * clearing it: the count is a state, and only the next cycle can say it changed. (No cycle at
   * all is the no-cycles alarm's to say.)
   */
  private targetCountAlarm(
    id: string,
    metric: cloudwatch.Metric,
    description: string,
  ): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
    });
  }

  /**
   * CloudWatch cannot publish to a topic encrypted with the AWS managed aws/sns key (its policy
   * cannot grant CloudWatch), so the topic gets a key of its own that CloudWatch may use. A topic
   * policy replaces SNS's default one: the TLS-only statement alone would leave nobody allowed to
   * publish, so CloudWatch is allowed explicitly, for alarms of this account and region.
   */
  private encryptedTopic(): sns.Topic {
    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the dequeue alarm topic',
      enableKeyRotation: true,
      // The key protects nothing but this topic's messages in flight: it goes with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsEncrypt',
        principals: [cloudWatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: alarmSourceConditions(),
      }),
    );
    const topic = new sns.Topic(this, 'Topic', {
      displayName: 'dequeue alarms',
      masterKey: key,
      enforceSSL: true,
    });
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: alarmSourceConditions(),
      }),
    );
    return topic;
  }
}
