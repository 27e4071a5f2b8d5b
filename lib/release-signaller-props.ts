/**
 * The props of ReleaseSignaller, in a file of their own: the construct and the checks that run
 * before it creates anything both read them, and neither needs the other for it.
 */
import type { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';

export interface ReleaseSignallerProps {
  /**
   * TypeScript entry of the function; it must export `handler`.
   *
   * @default - dequeue's own `lambda/handler.ts`
   */
  readonly entry?: string;

  /**
   * When processing cycles run, including the time zone of a cron expression.
   *
   * @default - every 15 minutes: `rate(15 minutes)`, UTC
   */
  readonly schedule?: scheduler.ScheduleExpression;
  /**
   * How often EventBridge Scheduler retries an invocation it could not deliver (0 to 185).
   * Failures of the function itself are not retried: the next cycle is the retry (docs/outcomes.md).
   *
   * @default 3
   */
  readonly scheduleRetryAttempts?: number;
  /**
   * How long Scheduler keeps trying to deliver one slot before it goes to the dead-letter queue
   * (60 seconds to 24 hours, and not longer than the shortest time between two cycles: a slot
   * delivered later would overlap the next cycle). Lambda's own queue for the invocation has the
   * same bound (its maximum event age is the shortest interval, at most 6 hours); what either
   * gives up on lands in the dead-letter queue and raises its alarm.
   *
   * @default - 15 minutes, or the shortest time between two cycles when that is shorter
   */
  readonly scheduleMaxEventAge?: Duration;

  /**
   * SSM parameter path of the configuration: `<ssmPrefix>/settings` and `<ssmPrefix>/targets/<name>`.
   *
   * @default '/dequeue'
   */
  readonly ssmPrefix?: string;
  /**
   * Customer managed KMS key of the SecureString parameters, if they use one.
   *
   * @default - none: the AWS managed aws/ssm key needs no grant
   */
  readonly parametersKey?: kms.IKey;
  /**
   * Name prefix of the Secrets Manager secrets holding AUTH credentials.
   *
   * @default 'dequeue/'
   */
  readonly secretPrefix?: string;
  /**
   * Customer managed KMS key of the secrets, if they use one.
   *
   * @default - none: the AWS managed aws/secretsmanager key needs no grant
   */
  readonly secretsKey?: kms.IKey;

  /**
   * Key prefix of mail stored after ATRN (ends with `/`).
   *
   * @default 'mail/'
   */
  readonly mailPrefix?: string;
  /**
   * How the stored mail is encrypted: `kms`, with a KMS key of the bucket's own that only the
   * function (to write) and the MailReaderPolicy (to read) are granted, so that broad
   * s3:GetObject (ReadOnlyAccess, a support role) does not read customers' mail; or `s3`,
   * S3-managed keys, where nobody holds such access and the key's USD 1 a month is not wanted.
   * lib/mail-store.ts says more.
   *
   * @default 'kms'
   */
  readonly mailEncryption?: 'kms' | 's3';
  /**
   * Old versions of the mail `dequeue deliver` took out (delivered, or set aside under failed/)
   * are deleted this long after it took them out. Mail not yet delivered is never expired, nor
   * is anything the function itself overwrote or withdrew (only versions deliver tagged expire:
   * the function cannot destroy a stored message).
   *
   * @default Duration.days(30)
   */
  readonly mailExpiration?: Duration;
  /**
   * Old versions of the mail `dequeue deliver` took out move to S3 Standard-IA this long after it
   * took them out (30 days at least, and sooner than `mailExpiration`: Standard-IA bills 30 days
   * at least, and S3 does not move objects under 128 KB).
   *
   * @default - they stay in S3 Standard until they expire
   */
  readonly mailInfrequentAccessAfter?: Duration;

  /**
   * Function timeout: the deadline of one cycle (at most 15 minutes). Lambda's maximum by
   * default, because an ATRN provider may take up to 10 minutes to answer ATRN (the default
   * reply wait of an ATRN target) and then delivers the mail in the same session. Lower it only
   * when no target uses ATRN. It must not be longer than the shortest time between two cycles of
   * `schedule` (cron included), so that one cycle has ended before the next starts.
   *
   * @default Duration.minutes(15)
   */
  readonly timeout?: Duration;
  /**
   * Concurrent executions reserved for the function (and its maximum): the fan-out workers
   * (`workerMaxConcurrency`), one scheduled cycle and one manual invocation. Reserved, they
   * cannot be starved by other functions of the account, nor starve them. An account must keep
   * 100 executions unreserved: in an account whose limit is still the 10 of a new account, give
   * `'none'` (or ask AWS for a higher limit).
   *
   * @default - `workerMaxConcurrency` + 2 (with fan-out), else 2
   */
  readonly reservedConcurrency?: number | 'none';
  /**
   * Function memory in MiB (128 to 10240).
   *
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * How long the function's log (and the VPC flow log) is kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Put the function in a new VPC behind one NAT gateway with a fixed Elastic IP. Needed to reach
   * port 25 at all (AWS blocks it for functions outside a VPC) and for providers that allow ETRN
   * only from known addresses. Conflicts with `vpc`.
   *
   * @default false
   */
  readonly staticEgress?: boolean;
  /**
   * With `staticEgress`: an existing Elastic IP (allocation id) for the NAT gateway.
   *
   * @default - a new Elastic IP, retained when the stack is deleted
   */
  readonly egressAllocationId?: string;
  /**
   * Run the function in this existing VPC instead (its egress is then yours to arrange).
   * Conflicts with `staticEgress`.
   *
   * @default - no VPC, unless `staticEgress`
   */
  readonly vpc?: ec2.IVpc;
  /**
   * With `vpc`: the subnets of the function.
   *
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * In a VPC (`staticEgress` or `vpc`): the TCP ports the function's security group lets it
   * connect to, besides 443 for the AWS APIs, which is always allowed. A target, relay or
   * precheck on another port needs that port here; a connection to it would otherwise time out.
   * With your own VPC whose DHCP options name DNS servers other than Amazon's, add 53.
   *
   * @default [25, 79, 366, 465, 587]: ETRN/QSND, precheck and relay; FINGER; ODMR; implicit TLS;
   *   submission
   */
  readonly egressPorts?: readonly number[];

  /**
   * An address subscribed to the alarm topic this construct creates. Conflicts with `alarmTopic`.
   *
   * @default - no subscription
   */
  readonly alarmEmail?: string;
  /**
   * An existing topic for the alarms instead of a new encrypted one. Conflicts with `alarmEmail`
   * (subscribe your address to your topic).
   *
   * @default - a new topic encrypted with a key of its own
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * A target counts as failing once it has failed this many cycles in a row (temporary-failure,
   * permanent-failure or config-error; `no-mail` is a success). The failing-targets alarm fires
   * while any target is failing: one failed cycle (Exim's routine `458 Already processing`, a
   * dropped connection) pages nobody, the next cycle being the retry. Whole number, 1 to 1000.
   *
   * @default 3
   */
  readonly failingAfterCycles?: number;
  /**
   * A target counts as stale when it has not ended `signalled` or `no-mail` for longer than this.
   * The stale-targets alarm fires while any target is stale. Whole hours, 1 hour to 365 days, not
   * shorter than the longest time between two cycles of `schedule` (cron included); longer than
   * the longest time between two cycles in which a target is due (a target with `everyNthCycle`
   * 4 on a 6-hourly schedule is signalled once a day).
   *
   * @default - 24 hours, or two and a half times the longest time between two cycles when that is
   *   longer (a daily schedule: 60 hours), so that one failed cycle does not make a target stale
   */
  readonly staleAfter?: Duration;
  /**
   * A target's own mail server counts as down once its precheck (the check before the release
   * signal, docs/configuration.md "Precheck") has failed this many times in a row; the
   * server-down alarm fires while any target's server is down. Whole number, 1 to 1000; at the
   * default 15-minute schedule the default is an hour.
   *
   * @default 4
   */
  readonly serverDownAfterCycles?: number;
  /**
   * Shareable test events in the Lambda console (dry run, ordinary cycle, force, one target),
   * kept as the schema `_<function name>-schema` in the EventBridge schema registry
   * `lambda-testevent-schemas`. That registry is created when the account does not have it yet
   * and is left in place when the stack is deleted (other functions' events may live there).
   * Turn off where EventBridge Schemas may not be used.
   *
   * @default true
   */
  readonly consoleTestEvents?: boolean;
  /**
   * The `service` dimension of the function's metrics (POWERTOOLS_SERVICE_NAME), which the alarms
   * and the dashboard read: two deployments in one account and region each see only their own.
   *
   * @default - this construct's path, e.g. `Dequeue/ReleaseSignaller` (unique in an app; stack
   *   names are unique in an account and region)
   */
  readonly serviceName?: string;
  /**
   * Name of the CloudWatch dashboard (letters, digits, `-` and `_`, at most 255). Dashboards are
   * global to the account: a name must not be used by another deployment in any region.
   *
   * @default - a name CloudFormation generates (unique)
   */
  readonly dashboardName?: string;
  /**
   * Folder of the saved Logs Insights queries in the console (queries are regional).
   *
   * @default - the dashboard's name when given, else the stack's name
   */
  readonly queryFolder?: string;
  /**
   * The period the alarms evaluate: the function-error alarm sums errors over it, the failing and
   * stale alarms take the largest count reported in it.
   *
   * @default Duration.minutes(15)
   */
  readonly alarmPeriod?: Duration;

  /**
   * Create the fan-out work queue and its workers (docs/fan-out.md): a cycle with more due
   * targets than `settings.fanOut` allows one invocation sends them, one SQS message each, to a
   * queue from which the same function signals them in batches. Without it every cycle works all
   * of its targets itself, however many.
   *
   * @default true
   */
  readonly fanOut?: boolean;
  /**
   * Work orders per worker invocation (1 to 100; above 10 the mapping waits up to 1 s to fill a
   * batch). The worker works `settings.concurrency` of them at once: with the default 10, a batch
   * of 50 is 5 rounds, 150 s if all of them time out (30 s), inside the default timeout. With ATRN
   * targets (each may take minutes) keep `settings.concurrency` at least this large, so that a
   * batch is one round (docs/fan-out.md).
   *
   * @default 50
   */
  readonly workerBatchSize?: number;
  /**
   * Worker invocations at once at most (2 to 1000, the event source mapping's maximum
   * concurrency): bounds the load on the providers and on the account's Lambda concurrency.
   * Sessions at once: this times `settings.concurrency`.
   *
   * @default 10
   */
  readonly workerMaxConcurrency?: number;
  /**
   * Deliveries of one work order before it moves to the dead-letter queue (and its alarm fires).
   * AWS advises at least 5 for a Lambda consumer: a batch can come back a few times for
   * throttling alone.
   *
   * @default 5
   */
  readonly workerMaxReceiveCount?: number;
}
