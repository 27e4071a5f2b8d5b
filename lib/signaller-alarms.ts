/**
 * What tells the operator that mail is not being released: the function failing, a target failing
 * cycle after cycle or not signalled for too long (from the embedded metrics the handler writes
 * once per cycle), and scheduled invocations that never reached the function (the schedule's
 * dead-letter queue). All of them notify one encrypted SNS topic.
 *
 * A single failed target pages nobody: providers answer `458 Already processing` or drop a
 * connection now and then, and the next cycle is the retry. The handler counts the targets whose
 * failures have lasted (`FailingTargets`) or whose last success is too old (`StaleTargets`) and
 * publishes the two counts once per cycle: one value each, not one metric per target (custom
 * metrics are billed per dimension value).
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The metrics' namespace and the dimension Powertools adds to every one (`service`). */
const DEQUEUE_METRIC = { namespace: 'Dequeue', dimensionsMap: { service: 'dequeue' } } as const;

/** Failed targets of one cycle (temporary, permanent, config): graphed, not alarmed on. */
export const TARGET_FAILURES_METRIC = { ...DEQUEUE_METRIC, metricName: 'TargetFailures' } as const;

/**
 * Per cycle: how many targets have failed `failingAfterCycles` cycles in a row or more
 * (consecutiveFailures >= the threshold). The failing alarm watches it.
 */
export const FAILING_TARGETS_METRIC = { ...DEQUEUE_METRIC, metricName: 'FailingTargets' } as const;

/**
 * Per cycle: how many targets have not ended `signalled` or `no-mail` for longer than `staleAfter`.
 * The stale alarm watches it.
 */
export const STALE_TARGETS_METRIC = { ...DEQUEUE_METRIC, metricName: 'StaleTargets' } as const;

/** Environment variables the handler reads the two thresholds from. */
export const FAILING_AFTER_CYCLES_ENV = 'DEQUEUE_FAILING_AFTER_CYCLES';
export const STALE_AFTER_HOURS_ENV = 'DEQUEUE_STALE_AFTER_HOURS';

export interface SignallerAlarmsProps {
  /** The release-signalling function. */
  readonly function: lambda.IFunction;
  /** The schedule's dead-letter queue. */
  readonly deadLetterQueue: sqs.IQueue;
  /** Consecutive failed cycles after which a target counts as failing (for the description). */
  readonly failingAfterCycles: number;
  /** Time without success after which a target counts as stale (for the description). */
  readonly staleAfter: Duration;
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
  readonly undeliveredInvocations: cloudwatch.Alarm;

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
      FAILING_TARGETS_METRIC,
      props.period,
      `A target has failed ${cycles} cycle${cycles === 1 ? '' : 's'} in a row or more (metric Dequeue/FailingTargets): mail may stay held at the provider. \`dequeue status --table\` shows which target, since when and why.`,
    );
    this.staleTargets = this.targetCountAlarm(
      'StaleTargets',
      STALE_TARGETS_METRIC,
      props.period,
      `A target has not been signalled successfully (signalled or no-mail) for more than ${props.staleAfter.toHumanString()} (metric Dequeue/StaleTargets). \`dequeue status --table\` shows its last success and last error.`,
    );

    this.undeliveredInvocations = new cloudwatch.Alarm(this, 'UndeliveredInvocations', {
      alarmDescription:
        'EventBridge Scheduler could not invoke the dequeue function; the events wait in the dead-letter queue.',
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const notify = new actions.SnsAction(this.topic);
    for (const alarm of [
      this.functionErrors,
      this.failingTargets,
      this.staleTargets,
      this.undeliveredInvocations,
    ]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }

  /**
   * Alarms on a count of targets the handler publishes once per cycle: any target in that state
   * (Maximum >= 1) raises it, a cycle that reports 0 clears it. A period without a cycle in it
   * (a schedule slower than the period, a late start) keeps the alarm as it was instead of
   * clearing it: the count is a state, and only the next cycle can say it changed.
   */
  private targetCountAlarm(
    id: string,
    metric: {
      readonly namespace: string;
      readonly metricName: string;
      readonly dimensionsMap: Readonly<Record<string, string>>;
    },
    period: Duration,
    description: string,
  ): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric: new cloudwatch.Metric({
        ...metric,
        dimensionsMap: { ...metric.dimensionsMap },
        statistic: cloudwatch.Stats.MAXIMUM,
        period,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
    });
  }

  /**
   * CloudWatch cannot publish to a topic encrypted with the AWS managed aws/sns key (its policy
   * cannot grant CloudWatch), so the topic gets a key of its own that CloudWatch may use.
   */
  private encryptedTopic(): sns.Topic {
    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the dequeue alarm topic',
      enableKeyRotation: true,
      // The key protects nothing but this topic's messages in flight: it goes with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    key.grant(
      new iam.ServicePrincipal('cloudwatch.amazonaws.com'),
      'kms:Decrypt',
      'kms:GenerateDataKey*',
    );
    return new sns.Topic(this, 'Topic', {
      displayName: 'dequeue alarms',
      masterKey: key,
      enforceSSL: true,
    });
  }
}
