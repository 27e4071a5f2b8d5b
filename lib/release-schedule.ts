/**
 * The EventBridge Scheduler schedule that starts a processing cycle, and the dead-letter queue
 * for cycles that never ran: invocations Scheduler could not deliver, and (as the function's
 * on-failure destination, FailedCycleDestination) invocations Lambda took but gave up on.
 *
 * The input carries Scheduler's context attributes: the handler counts each scheduled slot
 * (schedule ARN + scheduled time) exactly once, and a retried delivery arrives with a new
 * execution id and the same scheduled time.
 */
import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The scheduled event, exactly as the handler expects it (docs/lambda.md "Events"). */
export const SCHEDULED_EVENT = {
  source: 'schedule',
  scheduleArn: scheduler.ContextAttribute.scheduleArn,
  scheduledTime: scheduler.ContextAttribute.scheduledTime,
  executionId: scheduler.ContextAttribute.executionId,
  // A string: Scheduler substitutes the attribute inside the quotes.
  attemptNumber: scheduler.ContextAttribute.attemptNumber,
} as const;

export interface ReleaseScheduleProps {
  /** The function started on every slot. */
  readonly function: lambda.IFunction;
  /** When cycles run, with its time zone. */
  readonly schedule: scheduler.ScheduleExpression;
  /** Delivery retries after Scheduler fails to invoke the function. */
  readonly retryAttempts: number;
  /** How long Scheduler keeps trying to deliver one slot. */
  readonly maxEventAge: Duration;
}

export class ReleaseSchedule extends Construct {
  readonly schedule: scheduler.Schedule;
  /** Slots Scheduler could not deliver within the retry policy, and cycles Lambda gave up on. */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ReleaseScheduleProps) {
    super(scope, id);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      // SQS-managed keys need no KMS grant for Scheduler's role to send.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the EventBridge Scheduler schedule (cdk-nag only recognises SQS redrive policies).',
    });

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Starts a dequeue processing cycle',
      schedule: props.schedule,
      target: new InvokeFunction(props.function, {
        input: scheduler.ScheduleTargetInput.fromObject(SCHEDULED_EVENT),
        retryAttempts: props.retryAttempts,
        maxEventAge: props.maxEventAge,
        deadLetterQueue: this.deadLetterQueue,
      }),
    });
  }
}

/**
 * LambdaInvoke grants `lambda:InvokeFunction` on the function and on `<function>:*` (every version
 * and alias); the schedule invokes the unqualified function only, so that is all it may invoke.
 */
class InvokeFunction extends targets.LambdaInvoke {
  constructor(
    private readonly invoked: lambda.IFunction,
    props: targets.ScheduleTargetBaseProps,
  ) {
    super(invoked, props);
  }

  protected override addTargetActionToRole(role: iam.IRole): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [this.invoked.functionArn],
      }),
    );
  }
}

/**
 * The function's on-failure destination for asynchronous invocations: the schedule's dead-letter
 * queue, so that a slot Lambda held too long (MaximumEventAgeInSeconds) or whose cycle failed is
 * recorded, with the reason, where a slot Scheduler could not hand over is. Lambda sends with the
 * function's role: signaller-permissions.ts grants exactly sqs:SendMessage on this queue
 * (lambda-destinations' SqsDestination would grant GetQueueUrl and GetQueueAttributes as well).
 */
export class FailedCycleDestination implements lambda.IDestination {
  constructor(private readonly queue: sqs.IQueue) {}

  bind(): lambda.DestinationConfig {
    return { destination: this.queue.queueArn };
  }
}
