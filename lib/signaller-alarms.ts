/**
 * What tells the operator that mail is not being released: the function failing, targets failing
 * (from the embedded metrics the handler writes), and scheduled invocations that never reached
 * the function (the schedule's dead-letter queue). All of them notify one encrypted SNS topic.
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

/** The metric the handler emits per failed target (Powertools adds `service` by default). */
export const TARGET_FAILURES_METRIC = {
  namespace: 'Dequeue',
  metricName: 'TargetFailures',
  dimensionsMap: { service: 'dequeue' },
} as const;

export interface SignallerAlarmsProps {
  /** The release-signalling function. */
  readonly function: lambda.IFunction;
  /** The schedule's dead-letter queue. */
  readonly deadLetterQueue: sqs.IQueue;
  /** Failed targets within one period that raise the alarm. */
  readonly failureAlarmThreshold: number;
  /** The period the function and target alarms sum over. */
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
  readonly targetFailures: cloudwatch.Alarm;
  readonly undeliveredInvocations: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: SignallerAlarmsProps) {
    super(scope, id);
    this.topic = props.topic ?? this.encryptedTopic();
    if (props.email !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    }

    this.functionErrors = new cloudwatch.Alarm(this, 'FunctionErrors', {
      alarmDescription: 'The dequeue function failed: a whole cycle did not run (see its log).',
      metric: props.function.metricErrors({ period: props.period, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.targetFailures = new cloudwatch.Alarm(this, 'TargetFailures', {
      alarmDescription:
        'Targets ended temporary-failure, permanent-failure or config-error: mail may stay held at the provider (see the function log for which and why).',
      metric: new cloudwatch.Metric({
        ...TARGET_FAILURES_METRIC,
        statistic: cloudwatch.Stats.SUM,
        period: props.period,
      }),
      threshold: props.failureAlarmThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      // No data means no cycle reported a failure, not that something is wrong.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

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
    for (const alarm of [this.functionErrors, this.targetFailures, this.undeliveredInvocations]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
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
    key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    return new sns.Topic(this, 'Topic', {
      displayName: 'dequeue alarms',
      masterKey: key,
      enforceSSL: true,
    });
  }
}
